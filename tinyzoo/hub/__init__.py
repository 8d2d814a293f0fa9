"""Where weights come from and where they are kept: the Hugging Face Hub, torch.hub, and their caches.

One module per job; this package gathers their public names, so ``from tinyzoo import hub;
hub.download(...)`` reads as before:

- :mod:`tinyzoo.hub.settings`: cache folders, the Hub's address, offline mode, timeouts;
- :mod:`tinyzoo.hub.digests`: SHA-256 of files (remembered), git blob ids, whole safetensors files;
- :mod:`tinyzoo.hub.hf`: files of Hub repos, downloaded into the Hugging Face cache and checked;
- :mod:`tinyzoo.hub.torch_hub`: torchvision checkpoints through torch.hub's cache;
- :mod:`tinyzoo.hub.cache`: what the two caches hold (``tinyzoo weights list``);
- :mod:`tinyzoo.hub.push`: checking and uploading an adapted-model directory (``tinyzoo push``).

Nothing here imports torch or ``huggingface_hub`` at module level. Every failure is a
one-line :class:`~tinyzoo.errors.TinyzooError` that names the repo or file and says how to proceed.
"""

from __future__ import annotations

from tinyzoo.hub.cache import CachedEntry, list_cached
from tinyzoo.hub.digests import file_sha256, git_blob_sha1, verify_safetensors
from tinyzoo.hub.hf import HubFile, cached_blob, download, evict, verify_hub_file
from tinyzoo.hub.push import ModelDir, check_model_dir, check_repo_id, upload_model_dir
from tinyzoo.hub.settings import DEFAULT_REVISION, hub_cache_dir, hub_endpoint, offline_mode, torch_checkpoints_dir
from tinyzoo.hub.torch_hub import CheckpointFile, checkpoint_path, download_checkpoint

__all__ = [
    "DEFAULT_REVISION", "CachedEntry", "CheckpointFile", "HubFile", "ModelDir", "cached_blob", "check_model_dir",
    "check_repo_id", "checkpoint_path", "download", "download_checkpoint", "evict", "file_sha256", "git_blob_sha1",
    "hub_cache_dir", "hub_endpoint", "list_cached", "offline_mode", "torch_checkpoints_dir", "upload_model_dir",
    "verify_hub_file", "verify_safetensors",
]
