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
from typing import Any, Literal, get_args

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_CLASSES = 1000
TINY_IMAGENET_CLASSES = 200
IMAGE_SIZE = 64  # Tiny ImageNet's images are 64x64
CROP_SIZE = 56  # the training crop of most reports (Kim); --stem small adapts networks to it

# The allowed values of the adapter choices; recipes, the CLI and the adapters all read these.
# small-up2: only the stem's strides removed, the input upsampled 2x (tinyzoo.surgery.timm_geometry).
StemMode = Literal["keep", "small", "small-up2", "resize"]
HeadInit = Literal["wnid", "random"]
KernelResize = Literal["bicubic", "pi", "pinv"]  # "pinv" is another spelling of "pi"
ResizeMode = Literal["bicubic", "bilinear"]
BnRecalibration = Literal["plain", "relative"]
PhotoView = Literal["full", "center"]
STEM_MODES: tuple[str, ...] = get_args(StemMode)
HEAD_INITS: tuple[str, ...] = get_args(HeadInit)
KERNEL_RESIZES: tuple[str, ...] = get_args(KernelResize)
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)
BN_RECALIBRATIONS: tuple[str, ...] = get_args(BnRecalibration)
FIDELITY_BN_CHOICES = ("none", *BN_RECALIBRATIONS)  # what `tinyzoo fidelity --bn` compares
PHOTO_VIEWS: tuple[str, ...] = get_args(PhotoView)
# Options the adapters read (``--option aux=drop``, a recipe's ``model.options``) and their values;
# every other option goes to the architecture's builder.
ADAPTER_OPTIONS: dict[str, tuple[str, ...]] = {"aux": ("adapt", "drop"), "resize_mode": RESIZE_MODES}
# What a recipe stage's ``adapt`` table may change before the stage starts.
STAGE_CHANGES = ("stem", "kernel_resize")
CALIBRATION_IMAGES = 256  # images BatchNorm recalibration draws, unless told otherwise
SOURCES = ("timm", "torchvision", "tinyzoo")
# The adapter roles tinyzoo.create fills from its own arguments, and the order each runs in
# (lower first). A plugin adds a step with a role of its own and an order of its choosing.
ROLE_ORDERS = {"stem-small": 100, "stem-up2": 100, "head": 200, "convolutionize": 300, "resize": 400}


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

    def best_result(self) -> Result | None:
        """The result with the highest validation top-1 among ``results``, or None."""
        scored = [(r.val_top1, r) for r in self.results if r.val_top1 is not None]
        return max(scored, key=lambda pair: pair[0])[1] if scored else None

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
    """An adapter: one step of surgery on a built network, for the families it names.

    ``apply`` is ``"module:function"``, resolved when the adapter runs. ``role`` is the step
    it fills (default: its name): ``tinyzoo.create`` runs one adapter per role, the one for
    the architecture's family (an adapter naming the family beats one for ``"*"``), in
    ``order`` (lower first). tinyzoo's roles (:data:`ROLE_ORDERS`) run when create's
    arguments ask for them and have a default order; any other role is a step a plugin
    adds, run for every architecture of the families it names, and needs an ``order``.
    """

    name: str
    apply: str
    families: tuple[str, ...] = ("*",)
    description: str = ""
    plugin: str | None = None
    role: str = ""
    order: int | None = None

    def __post_init__(self) -> None:
        if ":" not in self.apply:
            raise ValueError(f"adapter {self.name!r}: apply must be 'module:function', not {self.apply!r}")
        role = self.role or self.name
        object.__setattr__(self, "role", role)
        if self.order is None:
            if role not in ROLE_ORDERS:
                raise ValueError(
                    f"adapter {self.name!r}: role {role!r} is not one of tinyzoo's ({', '.join(ROLE_ORDERS)}); "
                    "give role= one of them, or order= for a step of your own (e.g. order=250 runs after the head)"
                )
            object.__setattr__(self, "order", ROLE_ORDERS[role])
        if isinstance(self.order, bool) or not isinstance(self.order, int):
            raise ValueError(f"adapter {self.name!r}: order must be an int, not {self.order!r}")

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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "description": self.description, "plugin": self.plugin}


def resolve_object(ref: str) -> Any:
    """Import ``"module:attr"`` and return the attribute (raises ImportError/AttributeError)."""
    module_name, _, attr = ref.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
