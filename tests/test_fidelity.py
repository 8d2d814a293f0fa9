"""Real weights on real photographs: the converted EfficientNet-Lite0 classifies them, its wnid head
keeps its predictions, each adapter's agreement is pinned to docs/fidelity.md, and ``tinyzoo fidelity``."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import tinyzoo
from tinyzoo.cli import cli as cli_group
from tinyzoo.data.photos import box_views, read_photos, whole_boxes
from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate import fidelity
from tinyzoo.wordnet import imagenet_wnids

REPO = Path(__file__).resolve().parents[1]
ARCH = "timm:tf_efficientnet_lite0"
CATS = ("n02123045", "n02123159", "n02124075")  # tabby, tiger cat, Egyptian cat
OTHERS = ("n07920052", "n03063599", "n04266014", "n03792782", "n09835506", "n01440764", "n02085620")  # espresso, mug, shuttle, bike, ...


def docs_script():
    spec = importlib.util.spec_from_file_location("make_fidelity_table", REPO / "docs" / "make_fidelity_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def photos(sample_photos):
    return read_photos(sample_photos)


@pytest.fixture(scope="module")
def original(lite0_weights):
    return tinyzoo.create(ARCH, stem="keep", classes=1000, weights=str(lite0_weights))


def whole_photo_logits(model, photos, size=224):
    views = box_views(photos, whole_boxes(photos), view="full", native=size)
    return torch.from_numpy(fidelity.logits(model, views.native, (0.5,) * 3, (0.5,) * 3))


def test_the_converted_weights_see_a_cat_in_chelsea_and_coffee_in_coffee(original, photos, lite0_weights):
    assert original.tinyzoo_config["weights"]["source"] == str(lite0_weights)
    scores = whole_photo_logits(original, photos)
    names = [p.name for p in photos]
    wnids = imagenet_wnids()
    top3 = {names[i]: [wnids[k] for k in scores[i].topk(3).indices.tolist()] for i in range(len(photos))}
    assert set(top3["chelsea.png"]) <= {*CATS, "n02127052"}  # the cats (and lynx)
    assert top3["chelsea.png"][0] in CATS
    assert top3["coffee.png"][0] == "n07920052"  # espresso


def test_the_wnid_head_gives_the_originals_scores_for_its_classes(original, photos, lite0_weights):
    wnids = [*OTHERS, *CATS]
    model = tinyzoo.create(ARCH, stem="keep", wnids=wnids, weights=str(lite0_weights))
    assert model.tinyzoo_config["head_init"] == "wnid"
    head = whole_photo_logits(model, photos)
    full = whole_photo_logits(original, photos)
    rows = [imagenet_wnids().index(w) for w in wnids]
    torch.testing.assert_close(head, full[:, rows], rtol=1e-5, atol=1e-4)
    chelsea = [p.name for p in photos].index("chelsea.png")
    assert {wnids[k] for k in head[chelsea].topk(3).indices.tolist()} == set(CATS)


@pytest.mark.slow
def test_each_adapters_agreement_is_the_one_docs_fidelity_md_gives(photos, lite0_weights):
    script = docs_script()
    result = fidelity.measure(ARCH, photos, weights=str(lite0_weights), bn=script.PIN_BN, patterns=script.PIN_PATTERNS, **script.PIN)
    doc = (REPO / "docs" / "fidelity.md").read_text()
    section = re.search(r"<!-- make_fidelity_table: pin -->(.*?)<!-- /make_fidelity_table: pin -->", doc, re.DOTALL).group(1)
    pinned = {m.group(1): [float(v) for v in m.group(2, 3, 4)]
              for m in re.finditer(r"^\| `([^`]+)` \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", section, re.MULTILINE)}
    measured = {r.variant.name: [result.summary(r, m)["mean"] for m in fidelity.METRICS] for r in result.variants}
    assert set(measured) == set(pinned) and len(pinned) == 8
    crop = 1 / len(result.photos) / script.PIN["crops_per_photo"]
    for name, (top1, top5, kl) in pinned.items():
        got = measured[name]
        assert abs(got[0] - top1) <= crop + 1e-6, (name, got, pinned[name])  # one crop may flip elsewhere
        assert abs(got[1] - top5) <= crop + 1e-6, (name, got, pinned[name])
        assert got[2] == pytest.approx(kl, rel=0.05, abs=0.05), (name, got, pinned[name])


def test_variants_come_from_the_spec_and_patterns_choose_among_them():
    from tinyzoo.registry import get_registry

    lite0 = fidelity.variants_for(get_registry().architecture(ARCH), bn=("none", "relative"))
    assert [v.name for v in lite0] == [
        "keep", "keep +bn relative",
        "small/bicubic", "small/bicubic +bn relative", "small/pi", "small/pi +bn relative",
        "small-up2/bicubic", "small-up2/bicubic +bn relative", "small-up2/pi", "small-up2/pi +bn relative",
        "resize/bicubic", "resize/bicubic +bn relative", "resize/bilinear", "resize/bilinear +bn relative",
    ]
    assert lite0[11].options == {"stem": "resize", "resize_mode": "bicubic", "recalibrate_bn": "relative"}
    assert lite0[9].options == {"stem": "small-up2", "kernel_resize": "pi", "recalibrate_bn": "relative"}
    resnet = fidelity.variants_for(get_registry().architecture("resnet18"), bn=("none",), patterns=("small/*",))
    assert [(v.name, v.options) for v in resnet] == [("small/bicubic", {"stem": "small", "kernel_resize": "bicubic"}),
                                                     ("small/pi", {"stem": "small", "kernel_resize": "pi"})]
    with pytest.raises(TinyzooError, match=r"^no variant of resnet18 matches tiny/\*; e.g. "):
        fidelity.variants_for(get_registry().architecture("resnet18"), patterns=("tiny/*",))


def test_bootstrap_intervals_are_over_photos_and_differences_are_paired():
    samples = fidelity.bootstrap_samples(4, 500, seed=0)
    assert samples.shape == (500, 4) and samples.min() == 0 and samples.max() == 3
    values = np.array([1.0, 0.0, 1.0, 0.5])
    low, high = fidelity.interval(values, samples, 0.95)
    assert 0 <= low < values.mean() < high <= 1
    assert fidelity.interval(np.full(4, 0.25), samples, 0.95) == (0.25, 0.25)
    scores = fidelity.crop_scores(np.array([[3.0, 1.0, 0.0]]), np.array([[0.0, 2.0, 1.0]]))
    assert scores["top1_agreement"].tolist() == [0.0] and scores["top5_agreement"].tolist() == [1.0]
    p = torch.tensor([3.0, 1.0, 0.0]).softmax(0)
    q = torch.tensor([0.0, 2.0, 1.0]).softmax(0)
    assert scores["kl"][0] == pytest.approx(float((p * (p / q).log()).sum()), rel=1e-6)


# -- the command line -------------------------------------------------------------------------------------
def fidelity_cli(*args):
    return CliRunner().invoke(cli_group, ["fidelity", *map(str, args)])


@pytest.fixture(scope="module")
def two_photos(sample_photos, tmp_path_factory):
    import shutil

    folder = tmp_path_factory.mktemp("two")
    for name in ("chelsea.png", "coffee.png"):
        shutil.copyfile(sample_photos / name, folder / name)
    return folder


QUICK = ("--crops", 2, "--calibration-crops", 1, "--variant", "keep*", "--variant", "resize/bilinear", "--bn", "none", "--bn", "relative")


def docs_block() -> list[list[str]]:
    text = (REPO / "docs" / "fidelity.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1)
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_docs_example_converts_the_weights_prints_a_table_and_draws_a_png(cli, tmp_path):
    convert, run = docs_block()
    assert convert[:2] == ["python", "tests/real_weights.py"] and run[:2] == ["tinyzoo", "fidelity"]
    made = subprocess.run([sys.executable, str(REPO / convert[1]), *convert[2:]], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    result = cli(*run[1:], cwd=tmp_path, env={"TINYZOO_PROGRESS_EVERY": "0"})  # a progress line at every step
    assert result.returncode == 0, result.stderr[-2000:]
    progress = [line.split(": ")[0] for line in result.stderr.splitlines() if " elapsed, ETA " in line]
    assert progress[0] == f"{ARCH} at 224 px" and progress[-1] == "fidelity" and "fidelity: 2/2 variant (100%)" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{ARCH} ({tmp_path / 'lite0.safetensors'}): teacher at 224 px, students at 64 px (full); 7 photos x 2 crops")
    assert lines[2].split() == ["variant", "top-1", "agreement", "top-5", "agreement", "KL(teacher||student)", "zero-shot", "val", "top-1"]
    assert [re.split(r"\s{2,}", line)[0] for line in lines[4:6]] == ["resize/bilinear", "resize/bilinear +bn relative"]
    assert lines[6:] == ["", "wrote fidelity.png"]
    number = r"[\d.]+ \[[\d.]+, [\d.]+\]"
    assert re.fullmatch(rf"resize/bilinear\s+{number}\s+{number}\s+{number}\s+-", lines[4])
    assert (tmp_path / "fidelity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_fidelity_json_schema_and_plot(two_photos, lite0_weights, tmp_path):
    plot = tmp_path / "out" / "fidelity.png"
    result = fidelity_cli(ARCH, "--weights", lite0_weights, "--photos", two_photos, *QUICK, "--seed", 3, "--json", "--plot", plot)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("architecture", "photos", "view", "input_size", "native_size", "crops_per_photo",
                                 "calibration_crops_per_photo", "seed", "bootstrap", "confidence", "val_images", "teacher_val_top1")} == {
        "architecture": ARCH, "photos": ["chelsea.png", "coffee.png"], "view": "full", "input_size": 64, "native_size": 224,
        "crops_per_photo": 2, "calibration_crops_per_photo": 1, "seed": 3, "bootstrap": 1000, "confidence": 0.95,
        "val_images": None, "teacher_val_top1": None,
    }
    assert data["weights"]["source"] == str(lite0_weights) and len(data["weights"]["sha256"]) == 64
    assert [v["name"] for v in data["variants"]] == ["keep", "keep +bn relative", "resize/bilinear"]
    entry = data["variants"][1]
    assert {k: entry[k] for k in ("adapter", "stem", "kernel_resize", "resize_mode", "recalibrate_bn", "experimental", "val_top1")} == {
        "adapter": "keep", "stem": "keep", "kernel_resize": None, "resize_mode": None, "recalibrate_bn": "relative",
        "experimental": False, "val_top1": None,
    }
    for metric in fidelity.METRICS:
        s = entry[metric]
        assert set(s) == {"mean", "low", "high"} and s["low"] <= s["mean"] <= s["high"]
    assert data["skipped"] == []
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = fidelity_cli(ARCH, "--weights", lite0_weights, "--photos", two_photos, "--crops", 2, "--variant", "keep", "--bn", "none",
                         "--seed", 3, "--json")
    assert json.loads(again.stdout)["variants"][0] == {**data["variants"][0], "seconds": json.loads(again.stdout)["variants"][0]["seconds"]}


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing", "is not a directory: give a folder of photographs (JPEG or PNG)"),
    (lambda d: d, "holds no photographs"),
    (lambda d: (d / "bad.png").write_bytes(b"not a png") and d, "bad.png: cannot decode image: not a recognised image format"),
])
def test_bad_photos_give_one_line(make, message, tmp_path):
    folder = make(tmp_path)
    result = fidelity_cli(ARCH, "--weights", "none", "--photos", folder)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output and len(result.output.strip().splitlines()) == 1


def test_fidelity_refuses_random_weights(two_photos):
    result = fidelity_cli("resnet18", "--weights", "none", "--photos", two_photos)
    assert result.exit_code == 1
    assert result.output == "Error: fidelity compares adapted networks with the original's predictions; resnet18 needs pretrained weights, not 'none'\n"


def test_fidelity_with_data_reports_zero_shot_accuracy_through_the_wnid_head(two_photos, lite0_weights, tmp_path):
    from tinyzoo.data.sample import write_sample

    write_sample(tmp_path / "tiny", classes=4, per_class=2, val_per_class=3, test_per_class=0)
    result = fidelity_cli(ARCH, "--weights", lite0_weights, "--photos", two_photos, "--crops", 1, "--variant", "keep",
                          "--bn", "none", "--data", tmp_path / "tiny", "--val-images", 5, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["val_images"] == 5
    top1 = data["variants"][0]["val_top1"]
    assert 0 <= top1 <= 1 and round(top1 * 5) == top1 * 5  # a count of 5 images
    assert 0 <= data["teacher_val_top1"] <= 1
