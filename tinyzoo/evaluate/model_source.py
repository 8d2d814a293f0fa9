"""What a MODEL argument names, and loading it.

MODEL is one of:

- an adapted-model directory (``tinyzoo adapt --out`` or a run's ``best/``): it holds
  ``config.json`` and ``model.safetensors``;
- a run directory (``tinyzoo train``): its ``best/`` is used;
- a Hub id ``ORG/NAME[@REVISION]`` or ``hf-hub:ORG/NAME[@REVISION]``: the adapted-model repo's
  ``config.json`` and ``model.safetensors`` are downloaded (or read from the cache) through
  :mod:`tinyzoo.hub`.

A local path wins over a Hub id of the same spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tinyzoo.errors import TinyzooError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BEST_DIR = "best"
SNAPSHOTS_DIR = "snapshots"
CHECKPOINTS_DIR = "checkpoints"
RECIPE_FILE = "recipe.toml"
HUB_ID_RE = re.compile(r"(?:hf[-_]hub:)?([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@([\w./-]+))?")
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


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` is an adapted-model directory (holds config.json and model.safetensors)."""
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


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
    return is_model_dir(path / BEST_DIR)


def resolve(argument: str, *, offline: bool | None = None) -> ModelSource:
    """Resolve ``argument`` (see module doc) to an adapted-model directory on disk.

    Raises a one-line :class:`TinyzooError` saying which of the forms it is not.
    """
    text = str(argument).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        if is_model_dir(path):
            return ModelSource(path, "dir", _label(path), text, run_dir=run_dir_of(path))
        if is_run_dir(path):
            return ModelSource(path / BEST_DIR, "run", _label(path), text, run_dir=path)
        if (path / CONFIG_FILE).is_file():
            raise TinyzooError(f"{path} has {CONFIG_FILE} but no {WEIGHTS_FILE}; an adapted-model directory needs both")
        if (path / BEST_DIR).is_dir():
            raise TinyzooError(f"run directory {path}: {path / BEST_DIR} holds no {CONFIG_FILE} + {WEIGHTS_FILE} (has training saved a best checkpoint yet?)")
        raise TinyzooError(f"{path} is neither an adapted-model directory ({CONFIG_FILE} + {WEIGHTS_FILE}) nor a run directory (best/)")
    match = HUB_ID_RE.fullmatch(text)
    if match and not path.exists() and not text.startswith((".", "/", "~")):
        repo_id, revision = match.group(1), match.group(2)
        return ModelSource(download_model_dir(repo_id, revision, offline=offline), "hub", repo_id.replace("/", "--"), text)
    if path.exists():
        raise TinyzooError(f"{path} is a file; MODEL must be {FORMS}")
    raise TinyzooError(f"MODEL {text!r}: no such directory; expected {FORMS}")


def download_model_dir(repo_id: str, revision: str | None = None, *, offline: bool | None = None) -> Path:
    """The cached snapshot folder of Hub repo ``repo_id`` holding its config.json and
    model.safetensors, both at the same commit."""
    from tinyzoo import hub

    config = hub.download(repo_id, CONFIG_FILE, revision=revision, offline=offline)
    # the other files are pinned to the commit the config resolved to, so they always match
    for name in (WEIGHTS_FILE, *companion_files(config.path)):
        other = hub.download(repo_id, name, revision=config.revision, offline=offline)
        if other.path.parent != config.path.parent:
            raise TinyzooError(f"Hub repo {repo_id}: {CONFIG_FILE} and {name} were cached in different snapshot folders")
    return config.path.parent


def companion_files(config_path: Path) -> list[str]:
    """Files beside model.safetensors that a config.json names (the per-pixel mean of ``preprocess``)."""
    import json

    try:
        entry = json.loads(Path(config_path).read_text(encoding="utf-8")).get("preprocess") or {}
    except (OSError, ValueError, AttributeError):
        return []  # loading the model reports what is wrong with it
    name = entry.get("pixel_mean") if isinstance(entry, dict) else None
    return [name] if isinstance(name, str) and name else []


def snapshot_dirs(run_dir: Path) -> list[Path]:
    """The adapted-model directories under a run's ``snapshots/``, oldest first (by name)."""
    folder = Path(run_dir) / SNAPSHOTS_DIR
    found = sorted((p for p in folder.iterdir() if not p.name.startswith(".") and is_model_dir(p)), key=lambda p: p.name) if folder.is_dir() else []
    if not found:
        raise TinyzooError(f"run directory {run_dir} has no snapshots in {folder} (each an adapted-model directory)")
    return found


def expand(arguments: list[str], *, snapshots: bool = False, offline: bool | None = None) -> list[ModelSource]:
    """Resolve every MODEL argument; with ``snapshots``, a run directory stands for all of its
    ``snapshots/`` (oldest first) instead of its ``best/``."""
    sources = []
    for argument in arguments:
        source = resolve(argument, offline=offline)
        if snapshots and source.run_dir is not None:
            sources += [ModelSource(p, "dir", f"{source.label}/{p.name}", str(p), source.run_dir) for p in snapshot_dirs(source.run_dir)]
        else:
            sources.append(source)
    return sources


def load(source: ModelSource | str, *, offline: bool | None = None):
    """The model of ``source`` (a :class:`ModelSource` or a MODEL argument), rebuilt by
    ``tinyzoo.adapt.load``, with its ``tinyzoo_config``."""
    from tinyzoo.adapt import load as load_adapted

    if not isinstance(source, ModelSource):
        source = resolve(source, offline=offline)
    return load_adapted(source.path)


def recorded_data(source: ModelSource) -> str | None:
    """The dataset directory the model's training run read (its run.json), when it is still on disk."""
    if source.run_dir is None or not (Path(source.run_dir) / "run.json").is_file():
        return None
    from tinyzoo.train.rundir import read_settings

    recorded = read_settings(source.run_dir).get("data")
    return recorded if recorded and Path(recorded).is_dir() else None


def eval_dir(source: ModelSource, *parts: str) -> Path:
    """Where evaluation results go by default: ``<run or model dir>/eval/...`` for a local model,
    ``./tinyzoo-eval/<repo>/...`` for a Hub one."""
    if source.kind == "hub":
        return Path("tinyzoo-eval", source.label, *parts)
    return Path(source.run_dir or source.path) / "eval" / Path(*parts)


def _label(path: Path) -> str:
    path = path.resolve()
    return path.parent.name + "-" + path.name if path.name == BEST_DIR else path.name
