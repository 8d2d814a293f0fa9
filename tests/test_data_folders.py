"""Class-folder datasets (``train/<class>/*.jpg``, any size) through ``--data``, and layout detection."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from data_fixtures import COLOURS, NAMES, WNIDS, encoded, make_tree, mean_colour, solid

import tinyzoo
from tinyzoo.builders import build
from tinyzoo.cli import cli
from tinyzoo.data.cache import open_split
from tinyzoo.data.layout import ResizedImagesWarning
from tinyzoo.data.sources import detect_layout, open_dataset
from tinyzoo.errors import TinyzooError
from tinyzoo.registry import get_registry
from tinyzoo.weights import LoadedWeights
from tinyzoo.wordnet import imagenet_indices

OWN = ["cat", "dog", "fox"]  # classes that are not WordNet ids

# most images here are not 64x64 on purpose; the tests that count them record the warning themselves
pytestmark = pytest.mark.filterwarnings("ignore:.*were resized")


def write_folders(root, classes, *, per_class=2):
    """Class ``k``: ``per_class`` training images of colour k in assorted sizes and formats, one validation
    image (none for the last class), and two unlabelled test images in test/."""
    shapes = [(64, "JPEG", "jpg"), (100, "PNG", "png"), (32, "JPEG", "jpeg")]
    for k, name in enumerate(classes):
        (root / "train" / name).mkdir(parents=True)
        for i in range(per_class):
            size, fmt, ext = shapes[(k + i) % len(shapes)]
            (root / "train" / name / f"{i}.{ext}").write_bytes(encoded(solid(COLOURS[k], size=size), fmt))
        if k < len(classes) - 1:
            (root / "val" / name).mkdir(parents=True)
            (root / "val" / name / "v.JPG").write_bytes(encoded(solid(COLOURS[k], size=80)))
    (root / "test").mkdir()
    for i in range(2):
        (root / "test" / f"t{i}.jpg").write_bytes(encoded(solid(COLOURS[i])))
    return root


def classes_by_colour(split) -> list[int]:
    return [int(np.argmin([np.abs(mean_colour(image) - c).sum() for c in COLOURS])) for image in split.images]


def test_wnid_folders_are_wnids_with_wordnet_names(tmp_path):
    root = write_folders(tmp_path / "mine", WNIDS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResizedImagesWarning)
        train = open_split(root, "train", workers=0)
    assert train.wnids == WNIDS and train.names == {**NAMES, WNIDS[1]: "European fire salamander, Salamandra salamandra"}
    assert train.labels.tolist() == classes_by_colour(train) == [0, 0, 1, 1, 2, 2]
    assert [str(w.message) for w in caught] == [f"4 of 6 images in {root / 'train'} were not 64x64 and were resized to it"]
    assert train.resized == 4 and train.sizes == {"64x64": 2, "100x100": 2, "32x32": 2}
    val = open_split(root, "val", workers=0)
    assert val.labels.tolist() == classes_by_colour(val) == [0, 1]  # the last class has no validation folder
    test = open_split(root, "test", workers=0)
    assert test.labels.tolist() == [-1, -1] and [f.name for f in test.files] == ["t0.jpg", "t1.jpg"]


def test_a_wnid_folder_dataset_keeps_the_pretrained_imagenet_rows(tmp_path):
    """Folder names that are wnids give the wnid head, exactly as wnids.txt would."""
    torch.manual_seed(0)
    weights = LoadedWeights(build(get_registry().architecture("squeezenet1_1")).state_dict(), "test:squeezenet1_1")
    split = open_dataset(write_folders(tmp_path / "mine", WNIDS))
    model = tinyzoo.create("squeezenet1_1", wnids=split.wnids, weights=weights)
    assert model.tinyzoo_config["head_init"] == "wnid"
    head = model.tinyzoo_config["classifier"]
    assert torch.equal(model.get_submodule(head).weight, weights.state_dict[f"{head}.weight"][imagenet_indices(WNIDS)])


def test_folders_named_freely_are_their_own_classes(tmp_path):
    root = write_folders(tmp_path / "pets", OWN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResizedImagesWarning)
        train = open_split(root, "train", workers=0)
    assert train.wnids == OWN and train.names == {c: c for c in OWN}
    assert train.labels.tolist() == classes_by_colour(train)
    model = tinyzoo.create("lenet5", wnids=train.wnids)
    assert model.tinyzoo_config["wnids"] == OWN and model.tinyzoo_config["head_init"] == "random"


def test_a_validation_folder_that_is_no_class_is_named(tmp_path):
    root = write_folders(tmp_path / "pets", OWN)
    (root / "train" / "empty").mkdir()  # a folder without images is no class, and no error
    assert open_dataset(root).wnids == OWN and len(open_dataset(root).split_files("train")[0]) == 6
    (root / "val" / "cow").mkdir()
    (root / "val" / "cow" / "x.jpg").write_bytes(encoded(solid(COLOURS[0])))
    with pytest.raises(TinyzooError) as err:
        open_split(root, "val")
    assert str(err.value) == f"{root / 'val' / 'cow'}: folder is not one of the classes in {root / 'train'}; every class needs a training folder"


def test_the_layout_is_detected(tmp_path):
    assert detect_layout(make_tree(tmp_path / "tiny")) == "tiny-imagenet"
    assert detect_layout(write_folders(tmp_path / "pets", OWN)) == "class folders"


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "{root}: no such directory; --data takes a dataset folder (Tiny ImageNet, class folders or Parquet files) or hf:ORG/NAME"),
    (lambda root: root.mkdir(), ("{root}: not a dataset tinyzoo reads: no wnids.txt (Tiny ImageNet), no train/ folder of class folders "
                                 "(train/<class>/*.jpg) and no .parquet files")),
    (lambda root: (root / "train").mkdir(parents=True) or (root / "train" / "a.jpg").write_bytes(encoded(solid(COLOURS[0]))),
     "{root}/train: images lie directly in it; put each class's images in a folder of its own (train/<class>/*.jpg)"),
    (lambda root: (root / "train" / "cat").mkdir(parents=True) or (root / "train" / "cat" / "notes.txt").write_text("x"),
     "{root}/train: no class folders with images (.jpg, .jpeg, .png) in it; expected train/<class>/*.jpg, one folder per class"),
    (lambda root: make_tree(root / "tiny-imagenet-200"),
     "{root}: not a dataset itself, but {root}/tiny-imagenet-200 is (it holds wnids.txt): give that folder"),
])
def test_a_folder_that_fits_no_layout_is_one_line(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(TinyzooError) as err:
        open_split(root, "train")
    assert str(err.value) == message.format(root=root)


def test_prepare_reports_the_resized_count(tmp_path):
    root = write_folders(tmp_path / "pets", OWN)
    result = CliRunner().invoke(cli, ["data", "prepare", str(root), "--workers", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Warning: 4 of 6 images in {root / 'train'} were not 64x64 and were resized to it" in result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["train", "val", "test"]


@pytest.mark.slow
def test_a_class_folder_dataset_trains_the_quickstart_recipe(tmp_path):
    """Done when: `tinyzoo train quickstart --data FOLDERS` (about 4 s); classes that are not wnids reach config.json."""
    root = write_folders(tmp_path / "pets", OWN)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "quickstart", "--data", str(root), "--out", str(out), "--epochs-scale", "0.1",
        "--set", "model.classes=3", "--set", "stages[0].batch_size=2", "--threads", "1", "--json",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["steps"] == 3
    assert json.loads((out / "best" / "config.json").read_text())["wnids"] == OWN
