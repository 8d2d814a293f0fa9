"""What a MODEL argument names, and loading it.

Resolving a MODEL argument (an adapted-model directory, a run directory, or a Hub id) is
:mod:`tinyzoo.locate`'s job, shared with ``tinyzoo.load``; its names are imported here.
"""

from __future__ import annotations

from pathlib import Path

from tinyzoo.errors import TinyzooError
from tinyzoo.locate import RECIPE_FILE, SNAPSHOTS_DIR, ModelSource, resolve
from tinyzoo.model_files import is_model_dir
from tinyzoo.specs import IMAGE_SIZE

# what the eval pipeline of a run's recipe may say that matters once views are cut
NORMALISATION_KEYS = ("normalize", "mean", "std")


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


def preprocess_for(source: ModelSource, model, *, data_dir=None, cache_dir=None, crop: int | None = None):
    """How ``model`` (loaded from ``source``) wants its images: a
    :class:`~tinyzoo.evaluate.predictions.Preprocess`.

    A model from a run takes its run's ``recipe.toml``: ``evaluation.crop`` and the
    normalisation of ``data.eval`` (``dataset`` and ``pixel`` use the statistics of
    ``data_dir``'s training split, as the trainer did). Any other model takes its
    config.json's ``input_size``, ``mean`` and ``std``. ``crop`` overrides the crop size.
    """
    from tinyzoo.evaluate.predictions import Preprocess

    config = getattr(model, "tinyzoo_config", None) or {}
    recipe_path = source.run_dir / RECIPE_FILE if source.run_dir is not None else None
    if recipe_path is None or not recipe_path.is_file():
        return Preprocess.from_config(config, crop)
    from tinyzoo.data.augment import Pipeline
    from tinyzoo.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    cfg = {k: v for k, v in dict(recipe.data.eval).items() if k in NORMALISATION_KEYS}
    stats = None
    if cfg.get("normalize") in ("dataset", "pixel"):
        if data_dir is None:
            raise TinyzooError(
                f"{recipe_path}: data.eval normalize = {cfg['normalize']!r} needs the training split's statistics; pass --data DIR"
            )
        from tinyzoo.data.cache import open_split

        stats = open_split(data_dir, "train", cache_dir=cache_dir)
    # the whole 64x64 image is normalised; the views are cut from it afterwards
    pipeline = Pipeline.from_config({**cfg, "crop": IMAGE_SIZE, "eval_crop": "center"}, stats=stats, train=False)
    return Preprocess(crop or recipe.evaluation.crop, pipeline=pipeline, origin=str(recipe_path))
