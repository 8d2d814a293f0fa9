"""A parsed recipe checked against what is installed: every name it uses, before anything runs.

:func:`tinyzoo.recipe.parse_recipe` checks a recipe's shape (fields, types, ranges);
:func:`check_recipe` checks what depends on the plugins and the data pipeline: the architecture
exists, ``model.stem`` and each stage's ``adapt.stem`` are stems it supports, ``model.options``
are its options (or the adapters'), and ``data.train`` / ``data.eval`` are augmentation configs
:class:`~tinyzoo.data.augment.Pipeline` accepts. ``tinyzoo recipes check`` and the trainer (before
it creates the run directory) call it, so a typo in the last stage fails before the first.
Every error is a :class:`~tinyzoo.recipe.RecipeError` naming the dotted path and what is allowed.
"""

from __future__ import annotations

import difflib

from tinyzoo.errors import TinyzooError, UnknownNameError, one_line
from tinyzoo.recipe import RecipeError
from tinyzoo.specs import ADAPTER_OPTIONS

AUGMENT_PREFIX = "augmentation config: "  # how tinyzoo.data.augment starts its messages


def check_recipe(recipe, source: str, *, augmentation: bool = True) -> None:
    """Raise :class:`RecipeError` for the first name in ``recipe`` that nothing installed provides
    (``augmentation``: also build its two augmentation pipelines, which imports torch)."""
    spec = check_architecture(recipe.model.arch, source)
    check_stem(spec, recipe.model.stem, "model.stem", source)
    check_options(spec, dict(recipe.model.options), source)
    for number, stage in enumerate(recipe.stages):
        if stage.adapt:
            check_stem(spec, stage.adapt["stem"], f"stages[{number}].adapt.stem", source)
    if augmentation:
        check_augmentation(recipe.train_augment_config(), "data.train", source, train=True)
        check_augmentation(recipe.eval_augment_config(), "data.eval", source, train=False)


def check_architecture(name: str, source: str):
    """The spec of architecture ``name``, or a RecipeError at ``model.arch`` with the closest names."""
    from tinyzoo.registry import get_registry

    try:
        return get_registry().architecture(name)
    except UnknownNameError as exc:
        raise RecipeError(source, "model.arch", str(exc)) from None
    except TinyzooError as exc:
        raise RecipeError(source, "model.arch", one_line(exc)) from None


def check_stem(spec, stem: str, path: str, source: str) -> None:
    if stem not in spec.stems:
        raise RecipeError(source, path, f"architecture {spec.name!r} supports stems {', '.join(spec.stems)}; not {stem!r}")


def check_options(spec, options: dict, source: str) -> None:
    """``model.options``: the architecture's options and the adapters' (``aux``, ``resize_mode``) with their values."""
    allowed = [*sorted(spec.options), *sorted(ADAPTER_OPTIONS)]
    for key, value in options.items():
        path = f"model.options.{key}"
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise RecipeError(source, path, f"architecture {spec.name!r} has no option {key!r}{hint}; its options: {', '.join(allowed)}")
        if key in ADAPTER_OPTIONS and value not in ADAPTER_OPTIONS[key]:
            raise RecipeError(source, path, f"must be one of {', '.join(ADAPTER_OPTIONS[key])}; got {value!r}")
    if "aux" in options and not spec.aux_classifiers:
        raise RecipeError(source, "model.options.aux", f"applies to architectures with auxiliary classifiers; {spec.name!r} has none")


def check_augmentation(config: dict, path: str, source: str, *, train: bool) -> None:
    """An augmentation table as :meth:`Pipeline.from_config` checks it, its errors at ``path``.

    Statistics of a training split are stood in for (``normalize = "dataset"`` needs them; the
    trainer reads the real ones).
    """
    from tinyzoo.data.augment import CONFIG_KEYS, Pipeline

    for key in config:
        if key not in CONFIG_KEYS:
            close = difflib.get_close_matches(str(key), list(CONFIG_KEYS), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise RecipeError(source, f"{path}.{key}", f"unknown augmentation key{hint}; allowed: {', '.join(CONFIG_KEYS)}")
    try:
        Pipeline.from_config(config, stats=STATS_STANDIN, train=train)
    except TinyzooError as exc:
        raise RecipeError(source, path, one_line(exc).removeprefix(AUGMENT_PREFIX)) from None


class _StatsStandIn:
    """Stands in for a training split's statistics while a config is only being checked."""


STATS_STANDIN = _StatsStandIn()
