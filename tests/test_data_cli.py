"""``tinyzoo data sample|info|prepare`` and the sample dataset they write."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from data_fixtures import WNIDS, make_tree, write_truncated_jpeg

from tinyzoo.cli import cli
from tinyzoo.data.cache import open_split
from tinyzoo.data.layout import TinyImageNet
from tinyzoo.data.sample import imagenet_classes, write_sample


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample") / "tiny"
    write_sample(root, classes=5, per_class=40, seed=0)
    return root


def test_data_commands_import_no_torch_numpy_or_pillow():
    code = (
        "import sys; from tinyzoo.cli import cli; import tinyzoo.commands.data_commands\n"
        "try:\n    cli(['data', '--help'])\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('torch', 'numpy', 'PIL') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "torch" not in out.splitlines()[-1]
    probe = "import sys, tinyzoo.commands.data_commands, tinyzoo.data; print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"


# --- the sample dataset --------------------------------------------------------------------


def test_sample_command_writes_the_tiny_imagenet_layout(tmp_path):
    start = time.perf_counter()
    result = run("data", "sample", str(tmp_path / "s"))
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote 10 classes to {tmp_path / 's'}: 1000 train, 100 val, 100 test images (60 grayscale)\n"
    assert elapsed < 20  # about a second on an idle 2-core machine
    root = tmp_path / "s"
    wnids = (root / "wnids.txt").read_text().split()
    imagenet = dict(imagenet_classes())
    assert len(wnids) == 10 and all(w in imagenet for w in wnids)
    first = (root / "words.txt").read_text().splitlines()[0].split("\t")
    assert first == [wnids[0], imagenet[wnids[0]]]
    assert len(list((root / "train" / wnids[0] / "images").glob(f"{wnids[0]}_*.JPEG"))) == 100
    assert (root / "train" / wnids[0] / f"{wnids[0]}_boxes.txt").read_text().count("\n") == 100
    annotation = (root / "val" / "val_annotations.txt").read_text().splitlines()[0].split("\t")
    assert annotation[0] == "val_0.JPEG" and annotation[1] in wnids and len(annotation) == 6
    assert len(list((root / "test" / "images").glob("test_*.JPEG"))) == 100
    assert not (root / "test" / "test_annotations.txt").exists()


def test_sample_is_seeded(tmp_path):
    a, b = write_sample(tmp_path / "a", classes=3, per_class=4, seed=1), write_sample(tmp_path / "b", classes=3, per_class=4, seed=1)
    assert a.wnids == b.wnids
    name = f"train/{a.wnids[0]}/images/{a.wnids[0]}_0.JPEG"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert write_sample(tmp_path / "c", classes=3, per_class=4, seed=2).wnids != a.wnids


def test_sample_classes_are_learnable(sample, tmp_path):
    """A nearest-centroid classifier on colour spectra already separates the classes."""
    train = open_split(sample, "train", cache_dir=tmp_path / "c")
    val = open_split(sample, "val", cache_dir=tmp_path / "c")

    def features(images):
        x = np.asarray(images, dtype=np.float32).transpose(0, 3, 1, 2) / 255
        spectrum = np.abs(np.fft.rfft2(x))  # phase-free: colour (DC) and stripe angle/frequency
        return np.log1p(np.concatenate([spectrum[:, :, :8, :8], spectrum[:, :, -7:, :8]], 2).reshape(len(x), -1))

    f_train, f_val = features(train.images), features(val.images)
    centroids = np.stack([f_train[train.labels == k].mean(0) for k in range(5)])
    predicted = ((f_val[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (predicted == val.labels).mean() >= 0.8
    assert train.modes.get("L", 0) >= 2 and val.modes.get("L", 0) >= 1  # a few grayscale files


def test_sample_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    result = run("data", "sample", str(tmp_path / "s"))
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 's'}: exists and is not an empty directory; the sample is written into a new or empty one\n"


# --- info and prepare ------------------------------------------------------------------------------


def test_info_counts_splits_classes_modes_and_cache_state(sample, tmp_path):
    cache = str(tmp_path / "c")
    before = json.loads(run("data", "info", str(sample), "--json", "--cache-dir", cache).output)
    assert before["classes"] == 5
    assert {s: v["images"] for s, v in before["splits"].items()} == {"train": 200, "val": 20, "test": 20}
    assert before["splits"]["val"]["layout"] == "annotations"
    assert sum(before["splits"]["train"]["modes"].values()) == 200 and "L" in before["splits"]["train"]["modes"]
    assert before["splits"]["train"]["sizes"] == {"64x64": 200}
    assert all(c["train"] == 40 and c["val"] == 4 for c in before["per_class"])
    assert before["splits"]["train"]["cache"]["state"] == "missing"
    assert run("data", "prepare", str(sample), "--cache-dir", cache, "--split", "train").exit_code == 0
    after = json.loads(run("data", "info", str(sample), "--json", "--cache-dir", cache).output)
    assert after["splits"]["train"]["cache"]["state"] == "built"
    assert after["splits"]["train"]["modes"] == before["splits"]["train"]["modes"]  # now from the manifest
    assert after["splits"]["val"]["cache"]["state"] == "missing"
    text = run("data", "info", str(sample), "--cache-dir", cache).output
    assert "built (200 images, 2.5 MB)" in text and "missing (tinyzoo data prepare)" in text


def test_prepare_builds_every_split_then_reuses_them(tmp_path):
    root = make_tree(tmp_path / "tiny")
    cache = tmp_path / "c"
    result = CliRunner().invoke(cli, ["data", "prepare", str(root), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Warning: 1 of 6 images in {root / 'train'} were not 64x64 and were resized to it"
    assert lines[1].startswith("train: 6 images, decoded in ") and lines[1].endswith(f" -> {cache / 'train.npy'} (0.1 MB)")
    assert lines[2].startswith("val: 4 images, decoded in ") and lines[3].startswith("test: 2 images, decoded in ")
    again = run("data", "prepare", str(root), "--cache-dir", str(cache), "--split", "val")
    assert again.output == f"val: 4 images, cache up to date -> {cache / 'val.npy'} (0.0 MB)\n"


def test_prepare_bad_input_is_one_line_and_exit_1(tmp_path):
    root = make_tree(tmp_path / "tiny")
    (root / "wnids.txt").write_text("\n".join(WNIDS + WNIDS[:1]) + "\n")
    result = run("data", "prepare", str(root), "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == 1
    assert result.output == f"Error: {root / 'wnids.txt'}:4: {WNIDS[0]} is listed twice; each class id must appear once\n"


def test_prepare_truncated_file_fails_or_is_skipped(tmp_path):
    root = make_tree(tmp_path / "tiny")
    bad = root / "val" / "images" / "val_2.JPEG"
    write_truncated_jpeg(bad)
    failed = run("data", "prepare", str(root), "--cache-dir", str(tmp_path / "c"), "--split", "val")
    assert failed.exit_code == 1
    assert failed.output == f"Error: {bad}: cannot decode image: file is truncated\n"
    skipped = CliRunner().invoke(cli, ["data", "prepare", str(root), "--cache-dir", str(tmp_path / "c"), "--split", "val", "--skip-bad"])
    assert skipped.exit_code == 0
    assert skipped.output.splitlines()[0] == f"skipped: {bad}: cannot decode image: file is truncated"
    assert skipped.output.splitlines()[1].startswith("val: 3 images, decoded in ") and ", skipped 1 bad file -> " in skipped.output


def test_skip_bad_counts_layout_problems_too(tmp_path):
    root = make_tree(tmp_path / "tiny")
    ann = root / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + f"val_7.JPEG\t{WNIDS[0]}\t0\t0\t1\t1\nval_8.JPEG\tn00000000\t0\t0\t1\t1\n")
    failed = run("data", "prepare", str(root), "--cache-dir", str(tmp_path / "c"), "--split", "val")
    assert failed.exit_code == 1 and failed.output == f"Error: {ann}:5: val_7.JPEG not found in {root / 'val' / 'images'}\n"
    skipped = CliRunner().invoke(cli, ["data", "prepare", str(root), "--cache-dir", str(tmp_path / "c"), "--split", "val", "--skip-bad"])
    assert skipped.exit_code == 0 and "val: 4 images, decoded in " in skipped.output and ", skipped 2 bad files -> " in skipped.output
    assert len(TinyImageNet(root, skip_bad=True).split_files("val")[0]) == 4
