"""What a MODEL argument names, on disk: ``tinyzoo.load`` and ``tinyzoo eval`` read it alike.

MODEL is one of:

- an adapted-model directory (``tinyzoo adapt --out`` or a run's ``best/``): it holds
  ``config.json`` and ``model.safetensors``;
- a run directory (``tinyzoo train``): its ``best/`` is used;
- a Hub id ``ORG/NAME[@REVISION]`` or ``hf-hub:ORG/NAME[@REVISION]``: the adapted-model repo's
  ``config.json`` and ``model.safetensors`` are downloaded (or read from the cache) through
  :mod:`tinyzoo.hub`, both at one commit.

A local path wins over a Hub id of the same spelling.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tinyzoo.errors import TinyzooError
from tinyzoo.hub.hf import REPO_ID_RE, download
from tinyzoo.model_files import CONFIG_FILE, WEIGHTS_FILE, is_model_dir

# A run directory's layout (tinyzoo/train/rundir.py writes it).
BEST_DIR = "best"
SNAPSHOTS_DIR = "snapshots"
CHECKPOINTS_DIR = "checkpoints"
RECIPE_FILE = "recipe.toml"
HUB_ID_RE = re.compile(rf"(?:hf[-_]hub:)?({REPO_ID_RE.pattern})(?:@([\w./-]+))?")
FORMS = "an adapted-model directory (config.json + model.safetensors), a run directory (with best/), or a Hub id ORG/NAME"


@dataclass(frozen=True)
class ModelSource:
    """A resolved MODEL argument: ``path`` is the adapted-model directory to load, ``kind`` is
    ``"dir"``, ``"run"`` or ``"hub"``, ``label`` a short name for tables and file names,
    ``argument`` what the user typed, ``run_dir`` the training run the model belongs to (a
    run directory, its ``best/``, a snapshot or a checkpoint), else None."""

    path: Path
    kind: str
    label: str
    argument: str
    run_dir: Path | None = None


def run_dir_of(path: Path) -> Path | None:
    """The run directory an adapted-model directory belongs to (its ``best/``, a snapshot or a
    checkpoint), found by the run's ``recipe.toml``; None for a stand-alone model."""
    path = Path(path).absolute()
    candidates = [path.parent] if path.name == BEST_DIR else []
    if path.parent.name in (SNAPSHOTS_DIR, CHECKPOINTS_DIR):
        candidates.append(path.parent.parent)
    return next((c for c in candidates if (c / RECIPE_FILE).is_file()), None)


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a training run directory (holds an adapted-model ``best/``)."""
    return is_model_dir(Path(path) / BEST_DIR)


def _local(path: Path, text: str) -> ModelSource:
    if is_model_dir(path):
        return ModelSource(path, "dir", _label(path), text, run_dir=run_dir_of(path))
    if is_run_dir(path):
        return ModelSource(path / BEST_DIR, "run", _label(path), text, run_dir=path)
    if (path / CONFIG_FILE).is_file():
        raise TinyzooError(f"{path} has {CONFIG_FILE} but no {WEIGHTS_FILE}; an adapted-model directory needs both")
    if (path / BEST_DIR).is_dir():
        raise TinyzooError(f"run directory {path}: {path / BEST_DIR} holds no {CONFIG_FILE} + {WEIGHTS_FILE} (has training saved a best checkpoint yet?)")
    raise TinyzooError(f"{path} is neither an adapted-model directory ({CONFIG_FILE} + {WEIGHTS_FILE}) nor a run directory (best/)")


def resolve(argument: str | os.PathLike, *, offline: bool | None = None) -> ModelSource:
    """Resolve ``argument`` (see module doc) to an adapted-model directory on disk.

    Raises a one-line :class:`TinyzooError` saying which of the forms it is not.
    """
    text = str(argument).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        return _local(path, text)
    match = HUB_ID_RE.fullmatch(text)
    if match and not path.exists() and not text.startswith((".", "/", "~")):
        repo_id, revision = match.group(1), match.group(2)
        return ModelSource(download_model_dir(repo_id, revision, offline=offline), "hub", repo_id.replace("/", "--"), text)
    if path.exists():
        raise TinyzooError(f"{path} is a file; MODEL must be {FORMS}")
    raise TinyzooError(f"MODEL {text!r}: no such directory; expected {FORMS}")


def download_model_dir(repo_id: str, revision: str | None = None, *, offline: bool | None = None) -> Path:
    """The cached snapshot folder of Hub repo ``repo_id`` holding its config.json,
    model.safetensors and the files the config names, all at the same commit."""
    config = download(repo_id, CONFIG_FILE, revision=revision, offline=offline)
    # the other files are pinned to the commit the config resolved to, so they always match
    for name in (WEIGHTS_FILE, *companion_files(config.path)):
        other = download(repo_id, name, revision=config.revision, offline=offline)
        if other.path.parent != config.path.parent:
            raise TinyzooError(f"Hub repo {repo_id}: {CONFIG_FILE} and {name} were cached in different snapshot folders")
    return config.path.parent


def companion_files(config_path: Path) -> list[str]:
    """Files beside model.safetensors that a config.json names (the per-pixel mean of ``preprocess``)."""
    try:
        entry = json.loads(Path(config_path).read_text(encoding="utf-8")).get("preprocess") or {}
    except (OSError, ValueError, AttributeError):
        return []  # loading the model reports what is wrong with it
    name = entry.get("pixel_mean") if isinstance(entry, dict) else None
    return [name] if isinstance(name, str) and name else []


def _label(path: Path) -> str:
    path = path.resolve()
    return path.parent.name + "-" + path.name if path.name == BEST_DIR else path.name
