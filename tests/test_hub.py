"""The real download and upload paths against a local Hub-shaped server (``hub_server``), and the CLI."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import torch
from safetensors.torch import save, save_file

from tinyzoo import hub
from tinyzoo.errors import TinyzooError
from tinyzoo.registry import get_registry
from tinyzoo.weights import load_weights

REPO = "timm/resnet18.tv_in1k"


@pytest.fixture
def resnet18_bytes():
    from hub_server import random_timm_weights

    return random_timm_weights("resnet18")


def resnet18():
    return get_registry().architecture("resnet18")


def leftovers(root):
    """Files under a cache folder: blobs, snapshot entries and any partial download."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()) if root.exists() else []


def assert_one_line(exc_info, *fragments):
    message = str(exc_info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# -- downloads ---------------------------------------------------------------------------------
def test_download_then_served_from_cache(hub_server, resnet18_bytes):
    commit = hub_server.add(REPO, {"model.safetensors": resnet18_bytes})
    first = load_weights(None, resnet18())
    assert first.revision == commit and first.sha256 == hashlib.sha256(resnet18_bytes).hexdigest()
    assert hub_server.count("GET", "/cdn/") == 1  # downloaded once, from the CDN the Hub redirected to
    hub_server.requests.clear()

    second = load_weights(None, resnet18())
    assert hub_server.count("GET") == 0 and hub_server.count("HEAD") == 1  # only "is main still that commit?"
    assert second.path == first.path
    for k, v in first.state_dict.items():
        assert torch.equal(v, second.state_dict[k])
    hub_server.requests.clear()
    assert load_weights(None, resnet18(), offline=True).revision == commit
    assert hub_server.requests == []


def test_a_revision_pin_is_honoured(hub_server, resnet18_bytes):
    old = hub_server.add(REPO, {"model.safetensors": resnet18_bytes})
    newer = save({"fc.bias": torch.ones(1000)})
    new = hub_server.add(REPO, {"model.safetensors": newer})  # main moves on
    assert old != new
    pinned = load_weights(f"hf-hub:{REPO}@{old}", resnet18())
    assert pinned.revision == old and pinned.sha256 == hashlib.sha256(resnet18_bytes).hexdigest()
    assert load_weights(f"hf-hub:{REPO}", resnet18()).revision == new
    hub_server.requests.clear()
    load_weights(f"hf-hub:{REPO}@{old}", resnet18())
    assert hub_server.requests == []  # a cached commit needs no request at all


@pytest.mark.parametrize("source, fragment", [
    ("hf-hub:nobody/nothing", "Hub repo 'nobody/nothing' not found"),
    (f"hf-hub:{REPO}@no-such-branch", "has no revision 'no-such-branch'"),
    ("hf-hub:me/pickled", "has no model.safetensors"),
])
def test_hub_errors_are_one_line_and_leave_nothing(hub_server, source, fragment):
    hub_server.add("me/pickled", {"pytorch_model.bin": b"pickle"})
    hub_server.add(REPO, {"model.safetensors": b"x"})
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(source, resnet18())
    assert_one_line(exc_info, fragment)
    assert not [f for f in leftovers(hub.hub_cache_dir()) if "blobs" in f or "snapshots" in f]


def test_a_download_damaged_on_the_way_is_removed(hub_server, resnet18_bytes):
    hub_server.add(REPO, {"model.safetensors": resnet18_bytes})
    damaged = bytearray(resnet18_bytes)
    damaged[len(damaged) // 2] ^= 0xFF
    hub_server.tamper(resnet18_bytes, bytes(damaged))
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(None, resnet18())
    assert_one_line(exc_info, "damaged", REPO)
    assert not [f for f in leftovers(hub.hub_cache_dir()) if "blobs" in f or "snapshots" in f]


def test_a_truncated_file_on_the_hub_is_refused_and_not_kept(hub_server, resnet18_bytes):
    hub_server.add(REPO, {"model.safetensors": resnet18_bytes[:10_000]})
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(None, resnet18())
    assert_one_line(exc_info, "not a valid safetensors file", "removed from the cache")
    assert not [f for f in leftovers(hub.hub_cache_dir()) if "blobs" in f or "snapshots" in f]


def test_an_unreachable_hub_fails_fast_with_the_way_forward(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.monotonic()
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(None, resnet18())
    assert time.monotonic() - start < 5
    assert_one_line(exc_info, "cannot reach the Hub", "tinyzoo weights fetch resnet18", "--weights none")


# -- the commands --------------------------------------------------------------------------------
@pytest.mark.slow  # two CLI runs, one importing torch: about 6 s on 2 busy cores
def test_weights_fetch_without_the_hub_says_what_to_copy_where(cli, tmp_path):
    """Run where it cannot work, `weights fetch` names the cache folder to copy from a connected machine, and where to."""
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": ""}
    result = cli("weights", "fetch", "resnet18", env=env)
    assert result.returncode == 1 and result.stdout == ""
    cache = tmp_path / "hf" / "hub"
    assert result.stderr == (
        "Error: this machine cannot reach the Hub at http://127.0.0.1:9 (ConnectError), and timm/resnet18.tv_in1k/model.safetensors@main "
        f"is not in its Hugging Face cache {cache}: on a machine that can reach the Hub, run `tinyzoo weights fetch resnet18` and copy "
        "the folder models--timm--resnet18.tv_in1k from its Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub, default "
        f"~/.cache/huggingface/hub) into {cache} on this one; or pass --weights PATH (a .safetensors file) or --weights none\n"
    )
    offline = cli("weights", "fetch", "alexnet", env={**env, "TINYZOO_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "torch")})
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    assert offline.returncode == 1 and offline.stderr == (
        f"Error: offline, and alexnet-owt-7be5be79.pth is not in the torch.hub cache {folder}: on a machine that can reach "
        "download.pytorch.org, run `tinyzoo weights fetch alexnet` and copy the file alexnet-owt-7be5be79.pth from its torch.hub cache "
        f"(TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints) into {folder} on this one; or pass --weights PATH "
        "(a .safetensors file) or --weights none\n"
    )


def test_weights_fetch_and_list(hub_server, resnet18_bytes, cli):
    commit = hub_server.add(REPO, {"model.safetensors": resnet18_bytes})
    result = cli("weights", "fetch", "resnet18")
    assert result.returncode == 0, result.stderr
    assert f"commit {commit[:12]}" in result.stdout and "downloaded" in result.stdout

    listed = cli("weights", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["cache"], entry["repo"], entry["revision"], entry["refs"]) == ("hf-hub", REPO, commit, ["main"])
    assert entry["size"] == len(resnet18_bytes) and entry["files"] == ["model.safetensors"]

    offline = cli("weights", "fetch", "resnet18", "resnet50", env={"TINYZOO_OFFLINE": "1"})
    assert offline.returncode == 1
    assert "resnet18: hf-hub:timm/resnet18.tv_in1k" in offline.stdout and "cached" in offline.stdout
    assert offline.stderr.strip().count("\n") == 0
    assert offline.stderr.startswith("Error: offline, and timm/resnet50.tv_in1k/model.safetensors@main")

    unknown = cli("weights", "fetch", "resnet1")
    assert unknown.returncode == 2 and "unknown architecture 'resnet1'" in unknown.stderr


# -- push ----------------------------------------------------------------------------------------
CARD = """---
library_name: tinyzoo
tags: [tinyzoo, image-classification]
datasets: [zh-plus/tiny-imagenet]
base_model: timm/resnet18.tv_in1k
---
# resnet18 for Tiny ImageNet
"""


def model_dir(root, card=CARD):
    root.mkdir()
    save_file({"fc.weight": torch.zeros(200, 4)}, root / "model.safetensors")
    config = {"architecture": "resnet18", "classes": 200, "weights": {"source": f"hf-hub:{REPO}", "revision": "a" * 40}}
    (root / "config.json").write_text(json.dumps(config))
    (root / "README.md").write_text(card)
    return root


def test_push_dry_run_shows_files_and_card_and_sends_nothing(hub_server, tmp_path, cli):
    d = model_dir(tmp_path / "adapted")
    result = cli("push", str(d), "me/resnet18-tiny", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would upload 3 files to {hub_server.endpoint}/me/resnet18-tiny (revision main)" in result.stdout
    for name in ("README.md", "config.json", "model.safetensors", "library_name: tinyzoo", "base_model: timm/resnet18.tv_in1k"):
        assert name in result.stdout
    assert hub_server.requests == []


@pytest.mark.parametrize("card, fragment", [
    (CARD.replace("library_name: tinyzoo", "library_name: timm"), "library_name: tinyzoo (found 'timm')"),
    (CARD.replace("datasets: [zh-plus/tiny-imagenet]\n", ""), "datasets: naming tiny-imagenet"),
    (CARD.replace("base_model: timm/resnet18.tv_in1k\n", ""), "base_model: timm/resnet18.tv_in1k (the weights config.json"),
    ("# no front matter\n", "has no YAML front matter"),
])
def test_push_refuses_an_incomplete_model_card(tmp_path, cli, card, fragment):
    result = cli("push", str(model_dir(tmp_path / "adapted", card)), "me/x", "--dry-run")
    assert result.returncode == 1 and fragment in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_push_uploads_through_the_hub_api(hub_server, tmp_path):
    d = model_dir(tmp_path / "adapted")
    url = hub.upload_model_dir(hub.check_model_dir(d), "me/resnet18-tiny", private=True)
    [upload] = hub_server.uploads
    assert upload["repo_id"] == "me/resnet18-tiny" and upload["revision"] == "main"
    assert dict(upload["files"].items()) == {p.name: p.read_bytes() for p in d.iterdir()}
    assert url.endswith(upload["commit"]) and hub_server.repos["me/resnet18-tiny"]["private"]
    back = hub.download("me/resnet18-tiny", "config.json")  # what was pushed can be fetched back
    assert json.loads(back.path.read_text())["architecture"] == "resnet18"


def test_push_to_a_missing_repo_namespace_fails_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(TinyzooError) as exc_info:
        hub.upload_model_dir(hub.check_model_dir(model_dir(tmp_path / "adapted")), "me/x")
    assert_one_line(exc_info, "uploading to me/x", "ConnectError")
