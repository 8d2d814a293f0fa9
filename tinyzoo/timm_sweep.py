"""Which stems work for a timm model, and what geometry they give: the coverage sweep.

``measure(name)`` builds ``timm:<name>`` on the meta device (nothing is computed or
downloaded), runs each stem adapter and a 200-way head through the same adapters
``tinyzoo.create`` uses, checks ``(1, 200)`` logits at 56 and 64 px, and records the stage sizes
(from the first stride-4 stage on; the token grid for a plain transformer), parameters and
multiply-accumulates. ``docs/make_timm_coverage.py`` runs it over one model per timm module for
the table in docs/adapters.md, and over every model for ``tinyzoo/timm_coverage.json``, which
the ``timm:`` catalog reads to list only stems that work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from tinyzoo.adapt import TINY_IMAGENET_CLASSES as CLASSES
from tinyzoo.errors import TinyzooError
from tinyzoo.specs import CROP_SIZE, IMAGE_SIZE

TRIED_STEMS = ("small", "small-up2")


@dataclass
class StemResult:
    """One stem on one model: whether it works, why not, and its geometry at 56 px."""

    stem: str
    ok: bool
    reason: str = ""
    error: str = ""  # the exception's class when refused: TinyzooError, or a torch error the sweep caught
    sizes: list = field(default_factory=list)
    macs: int | None = None
    notes: list = field(default_factory=list)


@dataclass
class Coverage:
    """One model: its module, size, native geometry and each stem tried."""

    model: str
    module: str
    params: int
    input_size: int
    native_sizes: list
    native_macs: int | None
    stems: dict

    def working(self) -> list[str]:
        """The stems to list: keep and resize (the network as trained), and each stem that worked."""
        return ["keep", *[s for s in TRIED_STEMS if self.stems[s].ok], "resize"]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stems"] = {k: asdict(v) for k, v in self.stems.items()}
        return data


def build_meta(spec, classes: int | None = None):
    """``spec``'s network on the meta device (no memory, no initialisation)."""
    from tinyzoo.builders import build
    from tinyzoo.surgery.meta_trace import shapes_only

    with torch.device("meta"), shapes_only():
        return build(spec, num_classes=classes)


def adapt_meta(spec, stem: str, *, kernel_resize: str = "bicubic", classes: int = CLASSES):
    """``spec``'s network adapted on the meta device exactly as ``tinyzoo.create`` would
    (stem adapter, then the head), every declaration checked; returns (model, notes)."""
    from tinyzoo.adapt import find_adapter, run_adapter, stem_step
    from tinyzoo.adapt_report import ProvenanceTracker

    model = build_meta(spec).eval()
    tracker = ProvenanceTracker(model.state_dict())
    steps = [stem_step(stem, kernel_resize, {})]
    if spec.classifier:
        steps.append(("head", {"classes": classes, "init": "random", "rows": None, "aux": "adapt"}))
    notes = []
    with torch.no_grad():
        for role, params in filter(None, steps):
            adapter = find_adapter(role, spec.family)
            model, changes = run_adapter(adapter, model, spec, params)
            tracker.apply(adapter.name, changes, model.state_dict())
            notes += changes.notes
    return model, notes


def macs(model, size: int) -> int | None:
    """Multiply-accumulates of one ``size`` px forward (half torch's FLOP count), on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    from tinyzoo.surgery.meta_trace import meta_forward

    try:
        with FlopCounterMode(display=False) as counter:
            meta_forward(model, size)
    except Exception:
        return None
    return int(counter.get_total_flops() // 2)


def target_stages(model) -> list[dict]:
    """``feature_info`` from the first stage whose reduction is 4 or more: the stages the rule keeps."""
    stages = [dict(s) for s in getattr(model, "feature_info", None) or []]
    first = next((i for i, s in enumerate(stages) if s.get("reduction", 0) >= 4), len(stages))
    return stages[first:]


def stage_sides(model, size: int, stages: list[dict], classes: int | None = None) -> list:
    """The side of each of ``stages``' outputs for one ``size`` px input (meta device); with
    ``classes``, the logits are checked to be ``(1, classes)`` in the same pass."""
    from tinyzoo.surgery.meta_trace import meta_forward
    from tinyzoo.surgery.timm_geometry import output_side

    prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
    sides: dict[str, int | None] = {}

    def record(stage):
        def hook(module, args, output):
            sides.setdefault(stage["module"], output_side(output, stage.get("num_chs"), prefix))
        return hook

    hooks = [(model.get_submodule(s["module"]), None, record(s)) for s in stages]
    out = meta_forward(model, size, hooks)
    if classes is not None:
        _check_logits(out, size, classes)
    return [sides.get(s["module"]) for s in stages]


def _check_logits(out, size: int, classes: int) -> None:
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TinyzooError(f"gives {got} at {size} px, not (1, {classes})")


def try_stem(spec, stem: str, stages: list[dict], *, with_macs: bool = False) -> StemResult:
    """``stem`` on ``spec``: adapted on the meta device, logits checked at 56 and 64 px, the sizes
    of ``stages`` (the native model's, by module name) at 56 px."""
    from tinyzoo.surgery.meta_trace import meta_forward

    try:
        model, notes = adapt_meta(spec, stem)
        sides = stage_sides(model, CROP_SIZE, stages, CLASSES)
        _check_logits(meta_forward(model, IMAGE_SIZE), IMAGE_SIZE, CLASSES)
    except TinyzooError as exc:
        return StemResult(stem, False, str(exc), error=type(exc).__name__)
    except Exception as exc:  # a torch error: the sweep records it; the catalog will not list the stem
        return StemResult(stem, False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}", error=type(exc).__name__)
    return StemResult(stem, True, sizes=sides, macs=macs(model, CROP_SIZE) if with_macs else None, notes=notes)


def measure(name: str, *, with_macs: bool = False) -> Coverage:
    """The coverage of ``timm:<name>``: every stem of :data:`TRIED_STEMS` tried, the native geometry."""
    from tinyzoo.timm_catalog import timm_module, timm_spec

    spec = timm_spec(name)
    native = build_meta(spec).eval()
    stages = target_stages(native)
    try:
        native_sides = stage_sides(native, spec.input_size, stages)
    except Exception:
        native_sides = []
    return Coverage(
        model=name,
        module=timm_module(name.partition(".")[0]),
        params=sum(p.numel() for p in native.parameters()),
        input_size=spec.input_size,
        native_sizes=native_sides,
        native_macs=macs(native, spec.input_size) if with_macs else None,
        stems={stem: try_stem(spec, stem, stages, with_macs=with_macs) for stem in TRIED_STEMS},
    )
