"""``tinyzoo data download`` against a local HTTP server: resumed, restarted, corrupted, a full disk, hostile zips.

The server (tests/download_server.py) serves a zip of a generated dataset in the real
Tiny ImageNet layout and answers ``Range`` with 206 + Content-Range, as real servers do.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import stat
import zipfile
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from data_fixtures import zip_tree
from download_server import FileServer

import tinyzoo.data.download as download_module
from tinyzoo.cli import cli
from tinyzoo.data.download import PINNED_DIGEST, parse_digest, partial_path
from tinyzoo.data.sample import write_sample
from tinyzoo.errors import TinyzooError

CLASSES = 3


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    tree = write_sample(tmp_path_factory.mktemp("zip-source") / "tiny", classes=CLASSES, per_class=8, val_per_class=2, test_per_class=1).root
    data = zip_tree(tree)
    return SimpleNamespace(tree=tree, data=data, sha256=hashlib.sha256(data).hexdigest())


@pytest.fixture
def server(archive):
    served = FileServer(archive.data).start()
    yield served
    served.stop()


def download(server, target, *extra):
    args = ["data", "download", str(target), "--url", server.url, "--cache-dir", str(target.parent / "cache"), "--workers", "0", *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def leftovers(folder):
    """What a download may leave beside its target besides the dataset and the cache: nothing."""
    return sorted(p.name for p in folder.iterdir() if p.name not in ("data", "cache"))


def test_download_checks_extracts_and_builds_the_cache(server, archive, tmp_path):
    target = tmp_path / "data"
    result = download(server, target, "--sha256", archive.sha256)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"downloaded {server.url} ({len(archive.data) / 1e6:.1f} MB), SHA256 checked; SHA-256 {archive.sha256}"
    assert lines[1] == f"extracted to {target}"
    assert lines[2].startswith(f"train: {CLASSES * 8} images, decoded in ") and lines[3].startswith(f"val: {CLASSES * 2} images, decoded in ")
    source = sorted(p.relative_to(archive.tree).as_posix() for p in archive.tree.rglob("*"))
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == source
    assert (target / "wnids.txt").read_bytes() == (archive.tree / "wnids.txt").read_bytes()
    assert leftovers(tmp_path) == []  # the zip and the extraction folder are gone
    assert server.ranges == [None]

    again = download(server, target, "--sha256", archive.sha256)
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0] == f"{target} already holds the dataset (wnids.txt); building its cache"
    assert "cache up to date" in again.stdout and server.ranges == [None]


def test_an_interrupted_download_resumes_where_it_stopped(server, archive, tmp_path):
    target = tmp_path / "data"
    part = partial_path(target)
    cut = len(archive.data) // 5
    server.drop_after = cut  # every answer stops after a fifth of what it promised
    result = download(server, target, "--sha256", archive.sha256)
    assert result.exit_code == 1
    total = len(archive.data)
    assert result.output.splitlines() == [(
        f"Error: downloading {server.url} was interrupted 3 times (the connection closed after {3 * cut / 1e6:.1f} of "
        f"{total / 1e6:.1f} MB); {part} keeps the {3 * cut / 1e6:.1f} MB received: run the same command again to resume"
    )]
    assert part.stat().st_size == 3 * cut and part.read_bytes() == archive.data[: 3 * cut]
    assert server.ranges == [None, f"bytes={cut}-", f"bytes={2 * cut}-"]  # each try resumed the last
    assert not target.exists()

    server.drop_after = None
    resumed = download(server, target, "--sha256", archive.sha256)
    assert resumed.exit_code == 0, resumed.output
    assert server.ranges[-1] == f"bytes={3 * cut}-"
    assert f", resumed at {3 * cut / 1e6:.1f} MB), SHA256 checked" in resumed.stdout
    assert (target / "wnids.txt").is_file() and leftovers(tmp_path) == []


def test_a_server_that_ignores_range_is_followed_from_the_start(server, archive, tmp_path):
    target = tmp_path / "data"
    server.drop_after = 1000
    with pytest.raises(TinyzooError, match="was interrupted once"):
        download_module.fetch(server.url, partial_path(target), attempts=1, timeout=5)
    assert partial_path(target).stat().st_size == 1000
    server.drop_after, server.ignore_range = None, True
    result = download(server, target, "--sha256", archive.sha256)
    assert result.exit_code == 0, result.output  # the digest matches: the 200 answer was written from byte 0
    assert server.ranges[-1] == "bytes=1000-" and (target / "wnids.txt").is_file()


def test_a_corrupted_download_is_deleted_and_named(server, archive, tmp_path):
    target = tmp_path / "data"
    damaged = bytearray(archive.data)
    damaged[len(damaged) // 2] ^= 0xFF
    server.data = bytes(damaged)
    bad = hashlib.sha256(damaged).hexdigest()
    result = download(server, target, "--sha256", archive.sha256)
    assert result.exit_code == 1
    assert result.output.splitlines() == [(
        f"Error: {server.url}: the downloaded file's SHA256 is {bad}, not the expected {archive.sha256}; it was deleted "
        "(damaged on the way, or not the Tiny ImageNet zip): run again, or give --sha256 for a mirror's own file"
    )]
    assert not partial_path(target).exists() and not target.exists() and leftovers(tmp_path) == []


def test_without_sha256_the_pinned_checksum_is_used(server, archive, tmp_path):
    result = download(server, tmp_path / "data")
    algorithm, pinned = parse_digest(PINNED_DIGEST)
    actual = hashlib.new(algorithm, archive.data).hexdigest()
    assert result.exit_code == 1
    assert f"the downloaded file's {algorithm.upper()} is {actual}, not the pinned {pinned}; it was deleted" in result.output


def test_a_bad_sha256_option_is_one_line(server, tmp_path):
    result = download(server, tmp_path / "data", "--sha256", "abc")
    assert result.exit_code == 1 and result.output == "Error: 'abc' is not a checksum: give the zip's SHA-256 as 64 hex digits\n"


def full_disk_after(monkeypatch, *, writes_ok: int = 0, only_extraction: bool = False):
    """Make the module's one write function fail with ENOSPC, as a full disk would."""
    calls = {"n": 0}
    real = download_module.write_chunk

    def write(f, data):
        if only_extraction and str(f.name).endswith(".part"):
            return real(f, data)
        calls["n"] += 1
        if calls["n"] > writes_ok:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(f, data)

    monkeypatch.setattr(download_module, "write_chunk", write)


@pytest.mark.parametrize("where", ["download", "extraction"])
def test_a_full_disk_is_one_line_and_leaves_no_partial_files(server, archive, tmp_path, monkeypatch, where):
    target = tmp_path / "data"
    full_disk_after(monkeypatch, writes_ok=3 if where == "extraction" else 0, only_extraction=where == "extraction")
    result = download(server, target, "--sha256", archive.sha256)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: no space left on device in {tmp_path} (")
    assert lines[0].endswith("MB free); removed the partial download and extraction: free some space and run again")
    assert leftovers(tmp_path) == []  # no .part, no extraction folder, no dataset


def hostile_zip(name: str, *, link: bool = False) -> bytes:
    good = {"tiny-imagenet-200/wnids.txt": b"n01443537\n"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in good.items():
            archive.writestr(member, data)
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, b"/etc" if link else b"pwned")
    return buffer.getvalue()


@pytest.mark.parametrize("name, link, problem", [
    ("tiny-imagenet-200/../../evil.txt", False, "a path that climbs out with '..'"),
    ("/tmp/evil.txt", False, "an absolute path"),
    ("tiny-imagenet-200/evil", True, "a symbolic link"),
])
def test_a_zip_that_would_write_outside_its_folder_is_refused(tmp_path, name, link, problem):
    data = hostile_zip(name, link=link)
    server = FileServer(data).start()
    try:
        target = tmp_path / "inside" / "data"
        target.parent.mkdir()
        result = download(server, target, "--sha256", hashlib.sha256(data).hexdigest())
    finally:
        server.stop()
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: {server.url}: the zip holds {name!r}, {problem}; refused before extracting anything, and the download was deleted"
    ]
    assert [p for p in tmp_path.rglob("*") if p.name in ("evil.txt", "evil")] == []
    assert leftovers(target.parent) == []


@pytest.mark.slow
def test_the_downloaded_dataset_trains_the_quickstart_recipe(server, archive, tmp_path):
    """Done when: `tinyzoo data download` then `tinyzoo train quickstart --data DIR` (about 4 s)."""
    target = tmp_path / "data"
    assert download(server, target, "--sha256", archive.sha256).exit_code == 0
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "quickstart", "--data", str(target), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        "--epochs-scale", "0.1", "--set", f"model.classes={CLASSES}", "--set", "stages[0].batch_size=8", "--threads", "1", "--json",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 3 and 0 <= summary["final_val_top1"] <= 1
    assert json.loads((out / "run.json").read_text())["data"] == str(target.resolve())
