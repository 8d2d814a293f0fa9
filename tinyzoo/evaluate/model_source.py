"""What a MODEL argument names, and loading it.

Resolving a MODEL argument (an adapted-model directory, a run directory, or a Hub id) is
:mod:`tinyzoo.locate`'s job, shared with ``tinyzoo.load``; its names are imported here.
"""

from __future__ import annotations

from pathlib import Path

from tinyzoo.errors import TinyzooError
from tinyzoo.locate import SNAPSHOTS_DIR, ModelSource, resolve
from tinyzoo.model_files import is_model_dir


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
    """The dataset the model's training run read (its run.json's ``data``), None when the model
    is not part of a run; a one-line error naming the path when that dataset is gone."""
    if source.run_dir is None or not (Path(source.run_dir) / "run.json").is_file():
        return None
    from tinyzoo.data.sources import is_hub_value
    from tinyzoo.train.rundir import read_settings

    recorded = read_settings(source.run_dir).get("data")
    if recorded and not is_hub_value(recorded) and not Path(recorded).is_dir():
        raise TinyzooError(f"the run {source.run_dir} was trained on {recorded}, which is no longer there; "
                           "give --data DIR (where the dataset is now)")
    return recorded or None


def eval_dir(source: ModelSource, *parts: str) -> Path:
    """Where evaluation results go by default: ``<run or model dir>/eval/...`` for a local model,
    ``./tinyzoo-eval/<repo>/...`` for a Hub one."""
    if source.kind == "hub":
        return Path("tinyzoo-eval", source.label, *parts)
    return Path(source.run_dir or source.path) / "eval" / Path(*parts)
