"""torch.hub checkpoints (torchvision's weights): downloaded once into torch.hub's cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.hub.digests import file_sha256
from tinyzoo.hub.settings import TORCH_CACHE_NAME, how_to_proceed, offline_mode, request_timeout, torch_checkpoints_dir


@dataclass(frozen=True)
class CheckpointFile:
    """A torch.hub checkpoint in the local cache (``sha256`` of the file; ``downloaded`` by this call)."""

    url: str
    path: Path
    sha256: str
    downloaded: bool


def checkpoint_path(url: str) -> Path:
    """Where torch.hub keeps the checkpoint at ``url``."""
    from urllib.parse import urlparse

    return torch_checkpoints_dir() / os.path.basename(urlparse(url).path)


def how_to_copy(fetch_name: str, url: str, dst: Path) -> str:
    from urllib.parse import urlparse

    return how_to_proceed(fetch_name, f"the file {dst.name}", dst.parent, TORCH_CACHE_NAME, urlparse(url).netloc or url)


def download_checkpoint(url: str, *, offline: bool | None = None, fetch_name: str | None = None, progress: bool = True) -> CheckpointFile:
    """The torch.hub checkpoint at ``url``, downloaded once into :func:`torch_checkpoints_dir`.

    torch.hub checks the SHA-256 prefix in the file name (``alexnet-owt-7be5be79.pth``) and
    keeps nothing when a download fails. Offline, only the cache is read.
    """
    dst = checkpoint_path(url)
    name, folder = dst.name, dst.parent
    fetch_name = fetch_name or url
    if dst.is_file():
        return CheckpointFile(url, dst, file_sha256(dst), False)
    if offline_mode(offline):
        raise TinyzooError(f"offline, and {name} is not in the torch.hub cache {folder}: {how_to_copy(fetch_name, url, dst)}")

    import socket

    import torch.hub

    match = torch.hub.HASH_REGEX.search(name)
    folder.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(request_timeout())  # torch.hub's urlopen has no timeout of its own
    try:
        torch.hub.download_url_to_file(url, str(dst), match.group(1) if match else None, progress=progress)
    except RuntimeError as exc:  # torch.hub's hash check
        raise TinyzooError(f"{url} failed its checksum ({one_line(exc)}); nothing was kept, try again") from None
    except OSError as exc:
        raise TinyzooError(
            f"this machine cannot download {url} ({one_line(exc, 120, typed=True)}), and {name} is not in its torch.hub cache {folder}: "
            f"{how_to_copy(fetch_name, url, dst)}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return CheckpointFile(url, dst, file_sha256(dst), True)
