"""Plain, torch-free metadata for what plugins register.

A spec is data: names, sizes, figures and ``"module:function"`` strings. Building a
network, running an adapter or reading a recipe happens later, on request, so that
listing the registry never imports torch, torchvision or timm.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# small-up2: only the stem's strides removed, the input upsampled 2x (tinyzoo.surgery.timm_geometry).
STEM_MODES = ("keep", "small", "small-up2", "resize")
SOURCES = ("timm", "torchvision", "tinyzoo")


@dataclass(frozen=True)
class Result:
    """A Tiny ImageNet result a report gives for an architecture (accuracies in percent)."""

    report: str
    how: str
    val_top1: float | None = None
    test_top1: float | None = None
    val_top5: float | None = None


@dataclass(frozen=True)
class ArchitectureSpec:
    """What tinyzoo knows about one architecture without building it.

    ``builder`` is ``"module:function"``; the function is called with
    ``num_classes=`` plus ``builder_args`` and any ``options`` the user sets, and returns
    an ``nn.Module`` with random weights. Layer fields are dotted module paths in that
    module; adapters read them instead of guessing. ``stages`` names, in forward order, the
    modules whose output sizes describe the network's geometry (the first is where the stem
    ends); the geometry tests and figure hook them.
    """

    name: str
    family: str
    source: str
    builder: str
    builder_args: Mapping[str, Any] = field(default_factory=dict)
    weights: str | None = None
    input_size: int = 224
    num_classes: int = 1000
    stems: tuple[str, ...] = ("keep", "resize")
    params: int | None = None
    report: str | None = None
    results: tuple[Result, ...] = ()
    first_conv: str | None = None
    stem_pools: tuple[str, ...] = ()
    classifier: str | None = None
    aux_classifiers: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"architecture {self.name!r}: source must be one of {SOURCES}, not {self.source!r}")
        bad = [s for s in self.stems if s not in STEM_MODES]
        if bad:
            raise ValueError(f"architecture {self.name!r}: unknown stem modes {bad}; allowed: {STEM_MODES}")
        if ":" not in self.builder:
            raise ValueError(f"architecture {self.name!r}: builder must be 'module:function', not {self.builder!r}")

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data (the schema of ``tinyzoo list --json``)."""
        data = dataclasses.asdict(self)
        data["builder_args"] = dict(self.builder_args)
        data["options"] = dict(self.options)
        data["stems"] = list(self.stems)
        data["stem_pools"] = list(self.stem_pools)
        data["aux_classifiers"] = list(self.aux_classifiers)
        data["stages"] = list(self.stages)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data


@dataclass(frozen=True)
class AdapterSpec:
    """An adapter: surgery on a built network, for the families it names.

    ``apply`` is ``"module:function"``, resolved when the adapter runs.
    """

    name: str
    apply: str
    families: tuple[str, ...] = ("*",)
    description: str = ""
    plugin: str | None = None

    def handles(self, family: str) -> bool:
        """Whether this adapter can operate on an architecture of ``family``."""
        return "*" in self.families or family in self.families

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["families"] = list(self.families)
        return data


@dataclass(frozen=True)
class RecipeSpec:
    """A named training recipe: a TOML file (``path``) or the same content as a mapping."""

    name: str
    path: str | None = None
    data: Mapping[str, Any] | None = None
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError(f"recipe {self.name!r}: give exactly one of path= or data=")

    def load(self) -> dict[str, Any]:
        """The recipe's raw content (not yet validated or resolved)."""
        if self.data is not None:
            return dict(self.data)
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        with open(self.path, "rb") as f:
            return tomllib.load(f)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "description": self.description, "plugin": self.plugin}


def resolve_object(ref: str) -> Any:
    """Import ``"module:attr"`` and return the attribute (raises ImportError/AttributeError)."""
    module_name, _, attr = ref.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
