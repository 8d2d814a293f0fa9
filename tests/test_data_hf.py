"""``--data hf:ORG/NAME[@REV]`` and Parquet folders: fetched through a local Hub, decoded into the same cache.

The dataset repo holds what ``zh-plus/tiny-imagenet`` holds: ``data/train-*.parquet`` and
``data/valid-*.parquet`` (an ``image`` struct of JPEG bytes, a ``label`` ClassLabel whose
names are the wnids) and a README.md whose YAML describes the features.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from data_fixtures import (
    COLOURS,
    VAL,
    WNIDS,
    colour_parquet_files,
    encoded,
    mean_colour,
    parquet_split,
    solid,
    write_files,
)

from tinyzoo.cli import cli
from tinyzoo.data.cache import open_split, resolve_cache_dir
from tinyzoo.errors import TinyzooError

REPO = "zh-plus/tiny-imagenet"
SHUFFLED = [WNIDS[2], WNIDS[0], WNIDS[1]]  # the valid file's ClassLabel names, in another order than train's


@pytest.fixture
def hub(hub_server):
    hub_server.commit = hub_server.add(REPO, colour_parquet_files(SHUFFLED), repo_type="dataset")
    return hub_server


def colours_of(split) -> list[int]:
    """The class each decoded image's colour says it is."""
    return [int(np.argmin([np.abs(mean_colour(image) - c).sum() for c in COLOURS])) for image in split.images]


def test_a_hub_dataset_is_fetched_decoded_and_labelled_by_class_name(hub, tmp_path):
    train = open_split(f"hf:{REPO}", "train", workers=0)
    val = open_split(f"hf:{REPO}", "val", workers=0)
    assert train.wnids == val.wnids == WNIDS
    assert train.names[WNIDS[2]] == "Egyptian cat"  # words from tinyzoo's WordNet table
    assert train.labels.tolist() == colours_of(train) == [0, 0, 1, 1, 2, 2]
    # valid's labels index its own (shuffled) names; mapped by name they match the pixels
    assert val.labels.tolist() == colours_of(val) == list(VAL.values())
    assert val.images.shape == (4, 64, 64, 3) and train.built
    snapshot = tmp_path / "hf-home" / "hub" / "datasets--zh-plus--tiny-imagenet" / "snapshots" / hub.commit
    assert train.root == snapshot and train.files[0] == snapshot / "data" / "train-00000-of-00001-0a1b2c3d.parquet#0"
    manifest = json.loads((train.cache_path.parent / "val.manifest.json").read_text())
    size = (snapshot / "data" / "valid-00000-of-00001-4e5f6a7b.parquet").stat().st_size
    assert manifest["entries"] == [["hf", REPO, hub.commit], ["data/valid-00000-of-00001-4e5f6a7b.parquet", size]]
    assert train.cache_path.parent.name.startswith("zh-plus--tiny-imagenet-")
    assert hub.count("GET", "/api/datasets/zh-plus/tiny-imagenet/revision/main") == 2


def test_the_cache_is_reused_offline_and_when_the_hub_cannot_be_reached(hub, monkeypatch):
    open_split(f"hf:{REPO}", "train", workers=0)
    calls = len(hub.requests)
    monkeypatch.setenv("TINYZOO_OFFLINE", "1")
    again = open_split(f"hf:{REPO}", "train", workers=0)
    assert not again.built and len(hub.requests) == calls
    monkeypatch.delenv("TINYZOO_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert open_split(f"hf:{REPO}", "train", workers=0).labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_offline_without_the_dataset_is_one_line(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYZOO_OFFLINE", "1")
    with pytest.raises(TinyzooError) as err:
        open_split(f"hf:{REPO}", "train")
    assert str(err.value) == (
        f"offline, and Hub dataset {REPO}@main is not in the Hugging Face cache {tmp_path / 'hf-home' / 'hub'}: run "
        f"`tinyzoo data prepare hf:{REPO}` on a connected machine (with the same HF_HOME) and copy its Hugging Face cache here"
    )
    assert hub.requests == []


@pytest.mark.parametrize("value, message", [
    ("hf:nobody/nothing", ("Hub dataset 'nobody/nothing' not found at {endpoint} (or it is private): check the name (hf:ORG/NAME), "
                           "or log in (`hf auth login`) for a private dataset")),
    (f"hf:{REPO}@v9", f"Hub dataset '{REPO}' has no revision 'v9': give a branch, tag or commit that exists"),
    ("hf:tiny-imagenet", "'hf:tiny-imagenet' is not a Hub dataset: write hf:ORG/NAME or hf:ORG/NAME@REVISION (e.g. hf:zh-plus/tiny-imagenet)"),
])
def test_bad_hub_values_are_one_line(hub, value, message):
    with pytest.raises(TinyzooError) as err:
        open_split(value, "train")
    assert str(err.value) == message.format(endpoint=hub.endpoint)


def test_a_revision_pins_a_commit(hub):
    newer = colour_parquet_files()
    newer["data/train-00000-of-00001-0a1b2c3d.parquet"] = parquet_split([encoded(solid(COLOURS[2]))] * 2, [2, 2], WNIDS)
    hub.add(REPO, newer, repo_type="dataset")
    assert open_split(f"hf:{REPO}", "train", workers=0).labels.tolist() == [2, 2]
    assert open_split(f"hf:{REPO}@{hub.commit}", "train", workers=0).labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_class_names_come_from_the_card_when_the_files_carry_none(tmp_path):
    files = colour_parquet_files()
    images = [encoded(solid(COLOURS[k])) for k in (0, 1, 2)]
    files["data/train-00000-of-00001-0a1b2c3d.parquet"] = parquet_split(images, [0, 1, 2], None, metadata=False)
    del files["data/valid-00000-of-00001-4e5f6a7b.parquet"]
    root = write_files(tmp_path / "copy", files)
    train = open_split(root, "train", workers=0)
    assert train.wnids == WNIDS and train.labels.tolist() == colours_of(train) == [0, 1, 2]
    (root / "README.md").unlink()
    with pytest.raises(TinyzooError) as err:
        open_split(root, "train", cache_dir=tmp_path / "c2")
    assert str(err.value) == (
        f"{root / 'data' / 'train-00000-of-00001-0a1b2c3d.parquet'}: column 'label' has no class names (a ClassLabel's names "
        "in the dataset's metadata); tinyzoo needs them to know which class each label is"
    )


def test_a_missing_shard_and_an_unknown_class_are_named(tmp_path):
    files = colour_parquet_files()
    files["data/train-00000-of-00002-aa.parquet"] = files.pop("data/train-00000-of-00001-0a1b2c3d.parquet")
    root = write_files(tmp_path / "a", files)
    with pytest.raises(TinyzooError, match=r"the train split has 1 of its 2 Parquet shards \(shard 00001 is missing\)"):
        open_split(root, "train")
    files = colour_parquet_files()
    files["data/valid-00000-of-00001-4e5f6a7b.parquet"] = parquet_split([encoded(solid(COLOURS[0]))], [0], ["n99999999", *WNIDS[:2]])
    root = write_files(tmp_path / "b", files)
    with pytest.raises(TinyzooError) as err:
        open_split(root, "val", cache_dir=tmp_path / "c")
    assert str(err.value) == (
        f"{root / 'data' / 'valid-00000-of-00001-4e5f6a7b.parquet'}: class 'n99999999' is not one of the 3 classes of the "
        "training split's metadata"
    )


def test_without_pyarrow_the_error_names_the_extra(tmp_path, monkeypatch):
    root = write_files(tmp_path / "copy", colour_parquet_files())
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(TinyzooError) as err:
        open_split(root, "train")
    assert str(err.value) == "reading Parquet datasets needs pyarrow: pip install 'tinyzoo[hf]'"


def test_data_info_reads_a_hub_dataset(hub):
    result = CliRunner().invoke(cli, ["data", "info", f"hf:{REPO}", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "parquet" and report["classes"] == 3
    assert {s: v["images"] for s, v in report["splits"].items()} == {"train": 6, "val": 4}
    assert report["cache_dir"] == str(resolve_cache_dir(report["root"]))


@pytest.mark.slow
def test_a_hub_dataset_trains_the_quickstart_recipe(hub, tmp_path):
    """Done when: `tinyzoo train quickstart --data hf:ORG/NAME` (about 4 s); the run records the snapshot folder."""
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "quickstart", "--data", f"hf:{REPO}", "--out", str(out), "--epochs-scale", "0.1",
        "--set", "model.classes=3", "--set", "stages[0].batch_size=2", "--threads", "1", "--json",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 3 and 0 <= summary["final_val_top1"] <= 1
    recorded = json.loads((out / "run.json").read_text())["data"]
    assert recorded.endswith(f"datasets--zh-plus--tiny-imagenet/snapshots/{hub.commit}")
