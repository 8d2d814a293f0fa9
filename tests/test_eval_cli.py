"""``tinyzoo eval``, ``ensemble``, ``predict`` and ``analyze`` on the sample dataset.

Most tests run the commands in-process with a stand-in network (a two-layer convnet loaded
from a directory that has the adapted-model files) so that every view and combination
takes milliseconds; the end-to-end test at the bottom uses a real ``tinyzoo adapt`` model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tinyzoo.cli import cli
from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate import model_source
from tinyzoo.evaluate.combine import COMBINATIONS
from tinyzoo.evaluate.views import VIEW_SETS

CLASSES, TRAIN, VAL, TEST = 4, 4, 4, 3


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    from tinyzoo.data.sample import write_sample

    root = tmp_path_factory.mktemp("sample") / "tiny"
    write_sample(root, classes=CLASSES, per_class=TRAIN, val_per_class=VAL, test_per_class=TEST, seed=0)
    return root


def sample_classes(root: Path) -> tuple[list[str], list[str]]:
    from tinyzoo.data.layout import TinyImageNet

    layout = TinyImageNet(root)
    return layout.wnids, [layout.names[w] for w in layout.wnids]


class StandIn(torch.nn.Module):
    """Conv -> ReLU -> 1x1 conv to class scores, averaged over space (a score map with ``dense``)."""

    def __init__(self, num_classes: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.head = torch.nn.Conv2d(8, num_classes, 1)
        self.score_map = False

    def forward(self, x):
        y = self.head(torch.relu(self.conv1(x)))
        return y if self.score_map else y.mean(dim=(2, 3))


def write_stand_in(path: Path, wnids: list[str], names: list[str], seed: int) -> Path:
    """A directory with the adapted-model files; :func:`load_stand_in` builds it back."""
    path.mkdir(parents=True)
    config = {"architecture": "stand-in", "input_size": 56, "mean": [0.5] * 3, "std": [0.25] * 3,
              "wnids": wnids, "names": names, "seed": seed}
    (path / "config.json").write_text(json.dumps(config))
    (path / "model.safetensors").write_bytes(b"")
    return path


def load_stand_in(source, **_):
    """The stand-in of a directory, as ``tinyzoo.load`` gives a model: with its config and preprocessing tensors."""
    from tinyzoo import preprocess as preprocessing

    if not isinstance(source, model_source.ModelSource):
        source = model_source.resolve(source)
    config = json.loads((source.path / "config.json").read_text())
    net = StandIn(len(config["wnids"]), config["seed"])
    net.score_map = config.get("convolutionized", False)
    net.tinyzoo_config = config
    preprocessing.load_tensors(net, source.path)
    return net


@pytest.fixture
def models(sample, tmp_path, monkeypatch):
    """A stand-in model directory and a run directory (best/ + 3 snapshots)."""
    monkeypatch.setattr(model_source, "load", load_stand_in)
    wnids, names = sample_classes(sample)
    single = write_stand_in(tmp_path / "model", wnids, names, seed=1)
    run = tmp_path / "run"
    write_stand_in(run / "best", wnids, names, seed=2)
    for i in range(3):
        write_stand_in(run / "snapshots" / f"e{i}-acc0.{i}", wnids, names, seed=10 + i)
    (run / "snapshots" / "index.json").write_text("[]")
    (run / "metrics.jsonl").write_text("")
    return single, run


def invoke(*args: str):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_eval_every_view_and_combination(sample, models, tmp_path):
    single, _ = models
    for views in VIEW_SETS:
        for how in COMBINATIONS:
            out = tmp_path / "eval" / f"{views}-{how}"
            record = json.loads(invoke("eval", single, "--data", sample, "--tta", views, "--combine", how, "--out", out, "--json").stdout)
            assert record["images"] == CLASSES * VAL and 0 <= record["top1"] <= record["top5"] <= 1
            assert (record["views"], record["combine"]) == (views, how)
            assert set(record["per_class"]) <= set(sample_classes(sample)[0])
            assert json.loads((out / "metrics.json").read_text())["top1"] == record["top1"]


def test_eval_table_and_default_out_inside_the_run(sample, models):
    _, run = models
    text = invoke("eval", run, "--data", sample, "--tta", "10crop", "--combine", "expsum").stdout
    assert "top-1" in text and "top-5" in text
    assert (run / "eval" / "val-10crop-expsum" / "metrics.json").is_file()


def test_submission_has_one_line_per_test_image(sample, models, tmp_path):
    single, _ = models
    path = tmp_path / "submission.txt"
    record = json.loads(invoke("eval", single, "--data", sample, "--split", "test", "--submission", path, "--out", tmp_path / "o", "--json").stdout)
    lines = path.read_text().splitlines()
    test_files = sorted(p.name for p in (sample / "test" / "images").iterdir())
    assert len(lines) == CLASSES * TEST == record["submission_lines"] == record["images"]
    assert sorted(line.split()[0] for line in lines) == test_files
    wnids = set(sample_classes(sample)[0])
    assert all(re.fullmatch(r"\S+\.JPEG n\d{8}", line) and line.split()[1] in wnids for line in lines)
    assert "top1" not in record


def test_ensemble_softmax_of_snapshots_with_size_curve(sample, models, tmp_path):
    _, run = models
    out = tmp_path / "ens"
    record = json.loads(invoke("ensemble", run, "--snapshots", "--data", sample, "--method", "softmax", "--out", out, "--json").stdout)
    assert len(record["members"]) == 3 and len(record["top1_by_size"]) == 3
    assert record["top1"] == max(record["top1_by_size"]) == record["top1_by_size"][record["size"] - 1]
    with Image.open(out / "ensemble_size.png") as im:
        assert im.format == "PNG" and im.size == (500, 320)


def test_ensemble_vote_with_a_fallback(sample, models, tmp_path):
    single, run = models
    snaps = sorted(p for p in (run / "snapshots").iterdir() if p.is_dir())
    record = json.loads(invoke("ensemble", *snaps, "--fallback", single, "--data", sample, "--method", "vote",
                               "--tta", "10crop", "--out", tmp_path / "vote", "--json").stdout)
    assert record["fallback"] == str(single) and 0 <= record["fallback_images"] <= CLASSES * VAL
    text = invoke("ensemble", *snaps, "--data", sample, "--method", "vote", "--out", tmp_path / "vote2").stdout
    assert "fallback" in text


def test_predict_names_and_probabilities(sample, models):
    single, _ = models
    images = sorted((sample / "val" / "images").iterdir())[:2]
    results = json.loads(invoke("predict", single, *images, "--topk", "3", "--json").stdout)
    wnids, names = sample_classes(sample)
    assert [r["image"] for r in results] == [str(p) for p in images]
    for r in results:
        assert [t["rank"] for t in r["top"]] == [1, 2, 3]
        probs = [t["probability"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert all(names[wnids.index(t["wnid"])] == t["name"] for t in r["top"])
    assert "probability" in invoke("predict", single, images[0], "--tta", "12crop", "--combine", "expsum").stdout


def test_analyze_writes_the_report(sample, models, tmp_path):
    single, _ = models
    out = tmp_path / "analysis"
    text = invoke("analyze", single, "--data", sample, "--out", out, "--before", single).stdout
    assert "index.html" in text
    for name in ("misclassified.png", "confusion.png", "filters.png", "filters_before_after.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and min(im.size) > 100
    page = (out / "index.html").read_text()
    assert 'src="filters_before_after.png"' in page and 'src="confusion.png"' in page


def test_model_arguments(models, tmp_path):
    single, run = models
    assert model_source.resolve(str(single)).kind == "dir"
    resolved = model_source.resolve(str(run))
    assert (resolved.kind, resolved.path, resolved.run_dir) == ("run", run / "best", run)
    assert [s.path.name for s in model_source.expand([str(run)], snapshots=True)] == ["e0-acc0.0", "e1-acc0.1", "e2-acc0.2"]
    with pytest.raises(TinyzooError, match="neither an adapted-model directory"):
        model_source.resolve(str(tmp_path))
    with pytest.raises(TinyzooError, match="no such directory"):
        model_source.resolve(str(tmp_path / "missing"))


def test_hub_id_resolves_to_the_cached_snapshot(tmp_path, monkeypatch):
    from hub_server import write_cache_entry

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TINYZOO_OFFLINE", "1")
    cache = tmp_path / "hf" / "hub"
    commit = "a" * 40
    write_cache_entry(cache, "someone/tiny-r18", "config.json", b"{}", commit=commit)
    write_cache_entry(cache, "someone/tiny-r18", "model.safetensors", b"x", commit=commit)
    source = model_source.resolve("someone/tiny-r18")
    assert (source.kind, source.path.name, source.label) == ("hub", commit, "someone--tiny-r18")
    assert model_source.resolve("hf-hub:someone/tiny-r18").path == source.path
    with pytest.raises(TinyzooError, match="not in the Hugging Face cache"):
        model_source.resolve("someone/other")


def test_a_hub_model_comes_with_the_pixel_mean_its_config_names(tmp_path, monkeypatch):
    from hub_server import write_cache_entry

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TINYZOO_OFFLINE", "1")
    cache, commit = tmp_path / "hf" / "hub", "b" * 40
    config = json.dumps({"preprocess": {"crop": 56, "normalize": "pixel", "pixel_mean": "preprocess.safetensors"}}).encode()
    write_cache_entry(cache, "someone/zhai-r20", "config.json", config, commit=commit)
    write_cache_entry(cache, "someone/zhai-r20", "model.safetensors", b"x", commit=commit)
    with pytest.raises(TinyzooError, match="preprocess.safetensors"):  # named by config.json, not in the cache
        model_source.resolve("someone/zhai-r20")
    write_cache_entry(cache, "someone/zhai-r20", "preprocess.safetensors", b"y", commit=commit)
    source = model_source.resolve("someone/zhai-r20")
    assert (source.path / "preprocess.safetensors").read_bytes() == b"y"


def test_cli_errors_are_one_line(sample, tmp_path):
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "nope"), "--data", str(sample)])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: MODEL") and len(result.output.strip().splitlines()) == 1


def test_stand_in_probabilities_match_a_direct_forward(sample, models):
    """The command's numbers are the network's: center view, normalised with the config."""
    from tinyzoo.data.cache import open_split
    from tinyzoo.evaluate.predictions import predict_split

    single, _ = models
    net = load_stand_in(str(single))
    split = open_split(sample, "val")
    preds = predict_split(net, split, views="center", combine="softmax", device="cpu")
    x = torch.from_numpy(np.array(split.images[:, 4:60, 4:60])).permute(0, 3, 1, 2).float() / 255
    expected = torch.softmax(net((x - 0.5) / 0.25), dim=-1).detach().numpy()
    np.testing.assert_allclose(preds.probs, expected, rtol=1e-5, atol=1e-6)


def write_recipe(run: Path, *sets: str) -> None:
    from tinyzoo.recipe import load_recipe, recipe_to_toml

    (run / "recipe.toml").write_text(recipe_to_toml(load_recipe("quickstart", list(sets))))


def set_preprocess(path: Path, **entry) -> None:
    """Give a stand-in model directory a ``preprocess`` entry in its config.json."""
    config = json.loads((path / "config.json").read_text())
    config["preprocess"] = entry
    (path / "config.json").write_text(json.dumps(config))


def test_a_run_model_is_preprocessed_as_its_config_says(sample, models):
    """Crop and normalisation come from config.json's preprocess, whatever the run's recipe.toml says."""
    from tinyzoo import preprocess as preprocessing
    from tinyzoo.data.cache import open_split
    from tinyzoo.evaluate.predictions import predict_split

    _, run = models
    write_recipe(run, 'data.eval.normalize="none"', "evaluation.crop=40")  # not read
    snapshot = sorted(p for p in (run / "snapshots").iterdir() if p.is_dir())[0]
    for argument in (run, snapshot):
        source = model_source.resolve(str(argument))
        assert Path(source.run_dir).resolve() == run.resolve()
        set_preprocess(source.path, crop=48, resize=64, normalize="custom", mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5])
        net = load_stand_in(source)
        preprocess = preprocessing.of(net)
        assert (preprocess.crop, preprocess.normalize, preprocess.mean) == (48, "custom", (0.1, 0.2, 0.3))
    split = open_split(sample, "val")
    preds = predict_split(net, split, views="center", combine="softmax", device="cpu")
    x = torch.from_numpy(np.array(split.images[:, 8:56, 8:56])).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1), 0.5
    expected = torch.softmax(net((x - mean) / std), dim=-1).detach().numpy()
    np.testing.assert_allclose(preds.probs, expected, rtol=1e-5, atol=1e-6)
    assert preprocess.with_crop(40).crop == 40


def test_pixel_normalisation_travels_with_the_model(sample, models):
    """Zhai's per-pixel mean is in the model directory (preprocess.safetensors): no training data needed."""
    from tinyzoo import preprocess as preprocessing
    from tinyzoo.data.cache import open_split
    from tinyzoo.evaluate.predictions import predict_split

    _, run = models
    split = open_split(sample, "val")
    pixel_mean = torch.rand(64, 64, 3)
    best = run / "best"
    net = load_stand_in(str(best))
    preprocessing.record(net, preprocessing.Preprocess(56, normalize="pixel", std=(0.25, 0.5, 0.25), pixel_mean=pixel_mean))
    assert preprocessing.save_tensors(net, best) == ["preprocess.safetensors"]
    (best / "config.json").write_text(json.dumps(net.tinyzoo_config))
    loaded = load_stand_in(str(run))
    assert torch.equal(preprocessing.of(loaded).pixel_mean, pixel_mean)
    preds = predict_split(loaded, split, views="center", combine="softmax", device="cpu")
    x = torch.from_numpy(np.array(split.images[:, 4:60, 4:60])).permute(0, 3, 1, 2).float() / 255
    centred = x - pixel_mean[4:60, 4:60].permute(2, 0, 1)[None]
    expected = torch.softmax(net(centred / torch.tensor([0.25, 0.5, 0.25]).view(1, 3, 1, 1)), dim=-1).detach().numpy()
    np.testing.assert_allclose(preds.probs, expected, rtol=1e-5, atol=1e-6)
    record = json.loads(invoke("eval", run, "--data", sample, "--tta", "12crop", "--json").stdout)
    assert record["images"] == CLASSES * VAL
    (best / "preprocess.safetensors").unlink()
    with pytest.raises(TinyzooError, match=r"preprocess.pixel_mean names 'preprocess.safetensors', which is not a file beside it"):
        load_stand_in(str(run))


# -- end to end with real `tinyzoo adapt` models ----------------------------------------------


@pytest.fixture(scope="module")
def adapted(sample, tmp_path_factory):
    """Two quarter-width ResNet-20s (the quickstart network, random weights) from `tinyzoo adapt`."""
    out = tmp_path_factory.mktemp("adapted")
    paths = []
    for seed in range(2):
        torch.manual_seed(seed)
        path = out / f"r20-{seed}"
        invoke("adapt", "resnet20_zhai", "--weights", "none", "--option", "width=0.25", "--wnids", sample / "wnids.txt", "--out", path)
        paths.append(path)
    return paths


def test_adapted_model_through_every_command(sample, adapted, tmp_path):
    first, second = adapted
    # every view and every combination (all pairs run on the stand-in above)
    pairs = [(views, "expsum") for views in VIEW_SETS] + [("12crop", how) for how in COMBINATIONS if how != "expsum"]
    for views, how in pairs:
        record = json.loads(invoke("eval", first, "--data", sample, "--tta", views, "--combine", how, "--crop", 56, "--limit", 4,
                                   "--out", tmp_path / f"{views}-{how}", "--json").stdout)
        assert record["images"] == 4 and 0 <= record["top1"] <= record["top5"] <= 1
    submission = tmp_path / "sub.txt"
    invoke("eval", first, "--data", sample, "--split", "test", "--submission", submission, "--out", tmp_path / "test")
    assert len(submission.read_text().splitlines()) == CLASSES * TEST
    record = json.loads(invoke("ensemble", first, second, "--data", sample, "--out", tmp_path / "ens", "--json").stdout)
    assert len(record["top1_by_size"]) == 2 and (tmp_path / "ens" / "ensemble_size.png").is_file()
    record = json.loads(invoke("ensemble", first, second, first, "--method", "vote", "--fallback", second, "--data", sample,
                               "--out", tmp_path / "vote", "--json").stdout)
    assert record["fallback"] == str(second)
    results = json.loads(invoke("predict", first, sorted((sample / "val" / "images").iterdir())[0], "--json").stdout)
    assert len(results[0]["top"]) == min(5, CLASSES)
    invoke("analyze", first, "--data", sample, "--out", tmp_path / "analysis", "--before", "resnet20_zhai", "--before-weights", "none")
    with Image.open(tmp_path / "analysis" / "filters_before_after.png") as im:
        assert im.format == "PNG"
    assert "filters_before_after.png" in (tmp_path / "analysis" / "index.html").read_text()


@pytest.mark.slow
def test_small_stem_resnet18_convolutionized_dense(sample, tmp_path):
    """Kim's 3x3 stem (crop 56 from config.json) and Fleuret's score map on the whole image."""
    path = tmp_path / "r18"
    invoke("adapt", "resnet18", "--stem", "small", "--convolutionize", "--weights", "none", "--wnids", sample / "wnids.txt", "--out", path)
    assert json.loads((path / "config.json").read_text())["input_size"] == 56
    for views in ("12crop", "dense"):
        record = json.loads(invoke("eval", path, "--data", sample, "--tta", views, "--combine", "expsum", "--limit", 2,
                                   "--out", tmp_path / views, "--json").stdout)
        assert record["images"] == 2
