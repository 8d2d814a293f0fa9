"""Where the caches are, which Hub to ask, and whether the network may be used.

Every setting is read when a function is called, not when ``huggingface_hub`` is imported,
so ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``TINYZOO_OFFLINE``
and ``TORCH_HOME`` set by a caller (or a test) take effect.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_REVISION = "main"
DEFAULT_TIMEOUT = 10.0
TRUE_VALUES = ("1", "true", "yes", "on")


def env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to 1/true/yes/on."""
    return os.environ.get(name, "").strip().lower() in TRUE_VALUES


def offline_mode(offline: bool | None = None) -> bool:
    """``offline`` when given, else whether ``TINYZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` is set."""
    if offline is not None:
        return bool(offline)
    return env_flag("TINYZOO_OFFLINE") or env_flag("HF_HUB_OFFLINE")


def hub_cache_dir() -> Path:
    """The Hugging Face cache folder: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HF_HUB_CACHE"])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def hub_endpoint() -> str:
    """The Hub's address: ``HF_ENDPOINT`` or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def request_timeout() -> float:
    """Seconds to wait for the Hub to answer a request (``HF_HUB_ETAG_TIMEOUT``, default 10)."""
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT


def torch_checkpoints_dir() -> Path:
    """torch.hub's checkpoint folder (``TORCH_HOME/hub/checkpoints``), where torchvision weights are kept."""
    if "torch" in sys.modules:  # honours torch.hub.set_dir() when torch is loaded already
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


HF_CACHE_NAME = "Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub, default ~/.cache/huggingface/hub)"
TORCH_CACHE_NAME = "torch.hub cache (TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints)"


def hub_repo_folder(repo_id: str, kind: str = "models") -> str:
    """A Hub repo's folder in the Hugging Face cache: ``models--ORG--NAME`` (``datasets--...`` for datasets)."""
    return f"{kind}--" + repo_id.replace("/", "--")


def how_to_proceed(fetch_name: str, item: str, into: Path, cache: str = HF_CACHE_NAME, server: str = "the Hub") -> str:
    """The end of every "not cached" error: what to run where, what to copy into which folder, or do without it.

    ``item`` is what to copy (the repo's folder, or a checkpoint file) from ``cache`` (how the
    cache is found) on a machine that can reach ``server`` into ``into`` (this machine's cache folder).
    """
    return (
        f"on a machine that can reach {server}, run `tinyzoo weights fetch {fetch_name}` and copy {item} from its {cache} "
        f"into {into} on this one; or pass --weights PATH (a .safetensors file) or --weights none"
    )
