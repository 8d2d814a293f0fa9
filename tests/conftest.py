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
