"""Reading the tiny-imagenet-200 layout: class order, labels, boxes, pixel modes, and bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from data_fixtures import COLOURS, GRAY, NAMES, TEST, VAL, WNIDS, make_tree, mean_colour, write_truncated_jpeg

from tinyzoo.data.cache import open_split
from tinyzoo.data.layout import ResizedImagesWarning, TinyImageNet, read_image
from tinyzoo.errors import TinyzooError


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "tiny")


def test_class_order_and_names_come_from_wnids_and_words(tree):
    data = TinyImageNet(tree)
    assert data.wnids == WNIDS
    assert data.names == NAMES  # words.txt's other ids are ignored
    assert data.splits == ["train", "val", "test"]


def test_train_labels_follow_wnids_order_and_files_sort_by_name(tree):
    files, labels = TinyImageNet(tree).split_files("train")
    assert [f.relative_to(tree).as_posix() for f in files] == [
        "train/n01443537/images/n01443537_a.JPEG", "train/n01443537/images/n01443537_b.JPEG",
        "train/n01629819/images/n01629819_a.JPEG", "train/n01629819/images/n01629819_c.JPEG",
        "train/n02124075/images/n02124075_a.JPEG", "train/n02124075/images/n02124075_d.JPEG",
    ]
    assert labels == [0, 0, 1, 1, 2, 2]


def test_val_labels_come_from_the_annotations(tree):
    files, labels = TinyImageNet(tree).split_files("val")
    assert [f.name for f in files] == list(VAL)
    assert labels == list(VAL.values())


def test_val_sorted_into_class_folders_gives_the_same_labels(tmp_path):
    root = make_tree(tmp_path / "sorted", sorted_val=True)
    data = TinyImageNet(root)
    assert data.split_layout("val") == "class folders"
    files, labels = data.split_files("val")
    assert sorted(zip((f.name for f in files), labels)) == sorted(VAL.items())


def test_test_split_has_no_labels(tree):
    files, labels = TinyImageNet(tree).split_files("test")
    assert [f.name for f in files] == TEST
    assert labels == [-1, -1]


def test_boxes_are_kept(tree):
    data = TinyImageNet(tree)
    assert data.boxes("train")["n01443537_a.JPEG"] == (1, 2, 30, 40)
    assert data.boxes("val")["val_0.JPEG"] == (0, 0, 63, 63)


def test_grayscale_and_cmyk_become_rgb(tree):
    gray, mode, size = read_image(tree / "train/n01443537/images/n01443537_b.JPEG")
    assert (mode, size, gray.shape, gray.dtype) == ("L", (64, 64), (64, 64, 3), np.uint8)
    assert np.abs(mean_colour(gray) - GRAY).max() < 2
    cmyk, mode, _ = read_image(tree / "train/n01629819/images/n01629819_c.JPEG")
    assert mode == "CMYK"
    assert np.abs(mean_colour(cmyk) - COLOURS[1]).max() < 4


def test_decoded_pixels_match_their_labels_in_every_split(tree, tmp_path):
    with pytest.warns(ResizedImagesWarning) as caught:
        train = open_split(tree, "train", cache_dir=tmp_path / "cache")
    assert [str(w.message) for w in caught] == [f"1 of 6 images in {tree / 'train'} were not 64x64 and were resized to it"]
    assert train.resized == 1
    assert train.modes == {"RGB": 4, "L": 1, "CMYK": 1}
    assert train.sizes == {"64x64": 5, "48x48": 1}
    for i, label in enumerate(train.labels):
        expected = (GRAY,) * 3 if train.files[i].name.endswith("_b.JPEG") else COLOURS[label]
        assert np.abs(mean_colour(train.images[i]) - expected).max() < 4, train.files[i]
    val = open_split(tree, "val", cache_dir=tmp_path / "cache")
    assert val.labels.tolist() == list(VAL.values())
    for image, label in zip(val.images, val.labels):
        assert np.abs(mean_colour(image) - COLOURS[label]).max() < 4
    test = open_split(tree, "test", cache_dir=tmp_path / "cache")
    assert test.labels.tolist() == [-1, -1] and test.images.shape == (2, 64, 64, 3)
    assert (train.wnids, train.names) == (WNIDS, NAMES)


# --- bad input: one line naming the file and the problem ------------------------------


def test_missing_wnids_txt(tree):
    (tree / "wnids.txt").unlink()
    with pytest.raises(TinyzooError) as err:
        TinyImageNet(tree)
    assert str(err.value) == f"{tree / 'wnids.txt'}: file not found; a Tiny ImageNet directory lists its class ids (wnids) there, one per line"


def test_wnid_without_a_folder(tree):
    shutil.rmtree(tree / "train" / WNIDS[1])
    with pytest.raises(TinyzooError) as err:
        TinyImageNet(tree).split_files("train")
    assert str(err.value) == f"{tree / 'train' / WNIDS[1]}: folder not found; wnids.txt lists class {WNIDS[1]} but train/ has no folder for it"
    data = TinyImageNet(tree, skip_bad=True)
    assert data.split_files("train")[1] == [0, 0, 2, 2]
    assert data.skipped == [str(err.value)]


def test_annotation_naming_an_unknown_wnid(tree):
    ann = tree / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text().replace(f"val_2.JPEG\t{WNIDS[1]}", "val_2.JPEG\tn99999999"))
    with pytest.raises(TinyzooError) as err:
        TinyImageNet(tree).split_files("val")
    assert str(err.value) == f"{ann}:3: unknown wnid 'n99999999' for val_2.JPEG; it is not in wnids.txt"


def test_annotation_naming_a_missing_file(tree):
    (tree / "val" / "images" / "val_1.JPEG").unlink()
    ann = tree / "val" / "val_annotations.txt"
    with pytest.raises(TinyzooError) as err:
        TinyImageNet(tree).split_files("val")
    assert str(err.value) == f"{ann}:2: val_1.JPEG not found in {tree / 'val' / 'images'}"
    data = TinyImageNet(tree, skip_bad=True)
    files, labels = data.split_files("val")
    assert ([f.name for f in files], labels) == (["val_0.JPEG", "val_2.JPEG", "val_3.JPEG"], [2, 1, 2])
    assert len(data.skipped) == 1


def test_val_image_without_annotation(tree):
    shutil.copy(tree / "val" / "images" / "val_0.JPEG", tree / "val" / "images" / "val_9.JPEG")
    with pytest.raises(TinyzooError) as err:
        TinyImageNet(tree).split_files("val")
    ann = tree / "val" / "val_annotations.txt"
    assert str(err.value) == f"{tree / 'val' / 'images' / 'val_9.JPEG'}: not listed in {ann}; every validation image needs a line there"


def test_truncated_jpeg(tree, tmp_path):
    bad = tree / "train" / WNIDS[2] / "images" / f"{WNIDS[2]}_a.JPEG"
    write_truncated_jpeg(bad)
    with pytest.raises(TinyzooError) as err:
        read_image(bad)
    assert str(err.value) == f"{bad}: cannot decode image: file is truncated"


def test_undecodable_file(tree):
    bad = tree / "test" / "images" / "test_0.JPEG"
    bad.write_bytes(b"this is not a JPEG")
    with pytest.raises(TinyzooError) as err:
        read_image(bad)
    assert str(err.value) == f"{bad}: cannot decode image: not a recognised image format"


def test_unknown_split_and_missing_split(tree):
    shutil.rmtree(tree / "test")
    data = TinyImageNet(tree)
    with pytest.raises(TinyzooError, match="unknown split 'dev'; expected one of train, val, test"):
        data.split_files("dev")
    with pytest.raises(TinyzooError) as err:
        data.split_files("test")
    assert str(err.value) == f"{tree / 'test/images'}: not found; this dataset has no test split (it has: train, val)"
