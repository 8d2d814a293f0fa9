"""The decoded cache: built once, memory-mapped after, rebuilt when the dataset changes, atomic."""

from __future__ import annotations

import os

import numpy as np
import pytest
from data_fixtures import COLOURS, WNIDS, make_tree, mean_colour, write_truncated_jpeg

import tinyzoo.data.cache as cache_module
from tinyzoo.data.cache import open_split, resolve_cache_dir
from tinyzoo.errors import TinyzooError

# the tree's one 48x48 file warns on every build; test_data_layout checks that warning
pytestmark = pytest.mark.filterwarnings("ignore:.*were resized")


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "tiny")


def test_second_open_reuses_the_memory_mapped_cache(tree, tmp_path):
    first = open_split(tree, "train", cache_dir=tmp_path / "c")
    second = open_split(tree, "train", cache_dir=tmp_path / "c")
    assert first.built and not second.built
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable
    assert second.images.shape == (6, 64, 64, 3) and second.images.dtype == np.uint8
    assert second.labels.dtype == np.int64
    np.testing.assert_array_equal(first.images, second.images)
    assert sorted(p.name for p in (tmp_path / "c").iterdir() if not p.name.endswith(".lock")) == [
        "train.manifest.json", "train.npy", "train.stats.npz"
    ]


def test_a_changed_file_is_detected_and_rebuilt(tree, tmp_path):
    open_split(tree, "train", cache_dir=tmp_path / "c")
    path = tree / "train" / WNIDS[0] / "images" / f"{WNIDS[0]}_a.JPEG"
    from PIL import Image

    Image.new("RGB", (64, 64), COLOURS[2]).save(path, quality=95)
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    again = open_split(tree, "train", cache_dir=tmp_path / "c")
    assert again.built
    assert np.abs(mean_colour(again.images[0]) - COLOURS[2]).max() < 4


def test_an_added_file_and_changed_annotations_are_detected(tree, tmp_path):
    open_split(tree, "val", cache_dir=tmp_path / "c")
    ann = tree / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text().replace(f"val_0.JPEG\t{WNIDS[2]}", f"val_0.JPEG\t{WNIDS[0]}"))
    relabelled = open_split(tree, "val", cache_dir=tmp_path / "c")
    assert relabelled.built and relabelled.labels[0] == 0
    (tree / "val" / "images" / "val_0.JPEG").rename(tree / "val" / "images" / "val_0b.JPEG")
    ann.write_text(ann.read_text().replace("val_0.JPEG", "val_0b.JPEG"))
    renamed = open_split(tree, "val", cache_dir=tmp_path / "c")
    assert renamed.built and renamed.files[0].name == "val_0b.JPEG"


def test_stats_are_the_split_means(tree, tmp_path):
    split = open_split(tree, "train", cache_dir=tmp_path / "c")
    images = np.asarray(split.images, dtype=np.float64) / 255
    np.testing.assert_allclose(split.stats.pixel_mean, images.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(split.stats.channel_mean, images.reshape(-1, 3).mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(split.stats.channel_std, images.reshape(-1, 3).std(axis=0), atol=1e-4)
    cov = np.cov(images.reshape(-1, 3).T, bias=True)
    v = split.stats.eigvec
    np.testing.assert_allclose(v @ np.diag(split.stats.eigval) @ v.T, cov, atol=1e-4)


def test_truncated_jpeg_fails_the_build_and_leaves_no_cache(tree, tmp_path):
    bad = tree / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_a.JPEG"
    write_truncated_jpeg(bad)
    with pytest.raises(TinyzooError) as err:
        open_split(tree, "train", cache_dir=tmp_path / "c")
    assert str(err.value) == f"{bad}: cannot decode image: file is truncated"
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["train.lock"]  # no temp files, no manifest


def test_skip_bad_leaves_the_file_out_and_keeps_labels_aligned(tree, tmp_path):
    bad = tree / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_a.JPEG"
    write_truncated_jpeg(bad)
    split = open_split(tree, "train", cache_dir=tmp_path / "c", skip_bad=True)
    assert split.skipped == [f"{bad}: cannot decode image: file is truncated"]
    assert len(split) == 5 and bad not in split.files
    assert split.labels.tolist() == [0, 0, 1, 2, 2]
    assert np.abs(mean_colour(split.images[2]) - COLOURS[1]).max() < 4  # the CMYK file moved up a row
    assert not open_split(tree, "train", cache_dir=tmp_path / "c", skip_bad=True).built
    with pytest.raises(TinyzooError, match="file is truncated"):
        open_split(tree, "train", cache_dir=tmp_path / "c")  # the cache does not hide a bad file


def test_two_worker_processes_decode_the_same_array(tree, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(cache_module, "CHUNK", 2)
    here = open_split(tree, "train", cache_dir=tmp_path / "here", workers=0)
    pooled = open_split(tree, "train", cache_dir=tmp_path / "pool", workers=2)
    np.testing.assert_array_equal(here.images, pooled.images)
    assert here.modes == pooled.modes and here.resized == pooled.resized == 1


def test_cache_dir_argument_then_environment_then_xdg(tree, tmp_path, monkeypatch):
    assert resolve_cache_dir(tree, tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.setenv("TINYZOO_CACHE_DIR", str(tmp_path / "env"))
    from_env = resolve_cache_dir(tree)
    assert from_env.parent == tmp_path / "env" and from_env.name.startswith("tiny-")
    monkeypatch.delenv("TINYZOO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir(tree).parent == tmp_path / "xdg" / "tinyzoo" / "data"
    assert resolve_cache_dir(tree).name == from_env.name  # the same dataset, the same key
    assert resolve_cache_dir(tmp_path / "other").name != from_env.name


def test_a_full_disk_while_decoding_is_one_line_and_leaves_nothing(tree, tmp_path, monkeypatch):
    import errno

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module, "reserve", full)  # where the .npy's blocks are allocated
    cache = tmp_path / "c"
    with pytest.raises(TinyzooError) as err:
        open_split(tree, "train", cache_dir=cache)
    message = str(err.value)
    assert message.startswith(f"no space left on device for the decoded cache in {cache} (")
    assert message.endswith("MB free; train needs 0.1 MB); nothing was kept: free some space or give --cache-dir")
    assert sorted(p.name for p in cache.iterdir()) == ["train.lock"]
