"""Label-free fidelity: how much of what a network predicts at its native size each adapter keeps at 64 px.

From high-resolution photographs we draw random square crops (:mod:`tinyzoo.data.photos`).
The *teacher* is the original network at its native size on each crop; each *student* is an
adapted network (one :class:`Variant`: a stem adapter, its kernel resampling or resize mode,
with or without BatchNorm recalibration) on the same field of view downsampled, with
antialiasing, to 64 px (view ``full``) or cut to its central 56 px (view ``center``). Per
variant, over all crops:

- ``top1_agreement``: the student's top class is the teacher's;
- ``top5_agreement``: the teacher's top class is among the student's five best;
- ``kl``: KL(teacher || student) of the 1000-way class distributions, in nats.

Crops of one photo are correlated, so the intervals come from a bootstrap over photos (the
same resamples for every variant). No labels are needed. With Tiny ImageNet data, each
variant's zero-shot validation top-1 through the wnid head (the pretrained head's rows for
the dataset's wnids) is measured too. BatchNorm recalibration uses other crops of the same
photos (their own random draw), never the measured ones.

Variants come from the architecture's spec (``spec.stems``), so a family that gains a stem
is measured without changes here.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tinyzoo.errors import TinyzooError
from tinyzoo.specs import FIDELITY_BN_CHOICES

CROPS_PER_PHOTO = 8
CALIBRATION_PER_PHOTO = 4
BOOTSTRAP = 1000
CONFIDENCE = 0.95
VAL_IMAGES = 1000
BATCH_SIZE = 64
METRICS = ("top1_agreement", "top5_agreement", "kl")


@dataclass(frozen=True)
class Variant:
    """One student: ``options`` for :func:`tinyzoo.create` (``stem``, ``kernel_resize``,
    ``resize_mode``, ``recalibrate_bn``), or ``build(loaded, calibration) -> model`` for an
    experiment that is not a registered adapter (see docs/make_fidelity_table.py)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    build: Callable | None = None

    @property
    def adapter(self) -> str:
        """The name without its BatchNorm suffix (``small/pi +bn relative`` -> ``small/pi``)."""
        return self.name.split(" +bn")[0]


def variants_for(spec, *, bn=FIDELITY_BN_CHOICES, patterns=()) -> list[Variant]:
    """Every adapter variant ``spec`` supports (its ``stems``: ``keep``; ``resize`` per mode;
    ``small`` and ``small-up2`` per kernel resampling), each with the BatchNorm choices in ``bn``; only names
    matching one of ``patterns`` (shell-style) when given."""
    from tinyzoo.specs import RESIZE_MODES
    from tinyzoo.surgery.kernels import METHODS

    adapters: list[tuple[str, dict]] = []
    for stem in spec.stems:
        if stem == "keep":
            adapters.append(("keep", {"stem": "keep"}))
        elif stem == "resize":
            adapters += [(f"resize/{mode}", {"stem": "resize", "resize_mode": mode}) for mode in RESIZE_MODES]
        elif stem in ("small", "small-up2"):
            adapters += [(f"{stem}/{method}", {"stem": stem, "kernel_resize": method}) for method in METHODS]
    variants = []
    for name, options in adapters:
        for choice in bn:
            if choice not in FIDELITY_BN_CHOICES:
                raise TinyzooError(f"BatchNorm choice {choice!r} is not one of: {', '.join(FIDELITY_BN_CHOICES)}")
            if choice == "none":
                variants.append(Variant(name, options))
            else:
                variants.append(Variant(f"{name} +bn {choice}", {**options, "recalibrate_bn": choice}))
    if patterns:
        variants = [v for v in variants if any(fnmatch.fnmatchcase(v.name, p) for p in patterns)]
        if not variants:
            raise TinyzooError(f"no variant of {spec.name} matches {', '.join(patterns)}; e.g. 'keep', 'resize/*', 'small/pi*'")
    return variants


# -- running networks -------------------------------------------------------------------------------
def logits(model, images: np.ndarray, mean, std, *, device=None, batch_size: int = BATCH_SIZE, desc: str | None = None) -> np.ndarray:
    """float32 ``(N, K)`` outputs of ``model`` (eval mode, channels_last) on uint8 ``(N, H, W, 3)`` images;
    ``desc`` names a progress bar (none without it)."""
    from tinyzoo.console import progress
    from tinyzoo.data.photos import normalised_batches

    device = torch.device(device or "cpu")
    model.eval().to(device=device, memory_format=torch.channels_last)
    out = []
    with torch.inference_mode(), progress(total=len(images), desc=desc or "", unit="img", leave=False, disable=desc is None) as bar:
        for batch in normalised_batches(images, mean, std, batch_size=batch_size):
            out.append(model(batch.to(device)).float().cpu())
            bar.update(len(batch))
    return torch.cat(out).numpy()


def crop_scores(teacher: np.ndarray, student: np.ndarray) -> dict[str, np.ndarray]:
    """Per-crop ``top1_agreement``, ``top5_agreement`` (0/1) and ``kl`` (nats) of student logits against teacher logits."""
    t = torch.from_numpy(teacher).double().log_softmax(1)
    s = torch.from_numpy(student).double().log_softmax(1)
    best = t.argmax(1)
    top5 = s.topk(min(5, s.shape[1]), dim=1).indices
    return {
        "top1_agreement": (s.argmax(1) == best).double().numpy(),
        "top5_agreement": (top5 == best[:, None]).any(1).double().numpy(),
        "kl": (t.exp() * (t - s)).sum(1).clamp_min(0).numpy(),
    }


# -- statistics --------------------------------------------------------------------------------------
def bootstrap_samples(photos: int, count: int, seed: int) -> np.ndarray:
    """``(count, photos)`` photo indices drawn with replacement: the resamples every variant shares."""
    return np.random.default_rng([seed, 2]).integers(0, photos, size=(count, photos))


def interval(values: np.ndarray, samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of the means of ``values`` (one per photo) over ``samples``."""
    means = values[samples].mean(1)
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


@dataclass
class VariantResult:
    """One measured variant: per-photo means of each metric, and its zero-shot validation top-1."""

    variant: Variant
    photo_means: dict[str, np.ndarray]
    crops: int
    val_top1: float | None = None
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class FidelityResult:
    """Everything :func:`measure` found; ``to_dict()`` is the ``--json`` document, ``rows()`` the table."""

    architecture: str
    weights: dict[str, Any]
    photos: list[str]
    settings: dict[str, Any]
    samples: np.ndarray
    variants: list[VariantResult] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    teacher_val_top1: float | None = None

    def summary(self, result: VariantResult, metric: str) -> dict[str, float]:
        """``mean`` over crops and the bootstrap interval (``low``, ``high``) over photos."""
        values = result.photo_means[metric]
        low, high = interval(values, self.samples, self.settings["confidence"])
        return {"mean": float(values.mean()), "low": low, "high": high}

    def difference(self, a: str, b: str, metric: str = "top1_agreement") -> dict[str, float]:
        """``a - b`` in ``metric`` for two measured variants, with its interval over the shared resamples
        (tighter than comparing two intervals: both variants saw the same crops)."""
        first, second = self.get(a), self.get(b)
        diff = first.photo_means[metric] - second.photo_means[metric]
        low, high = interval(diff, self.samples, self.settings["confidence"])
        return {"mean": float(diff.mean()), "low": low, "high": high}

    def get(self, name: str) -> VariantResult:
        for result in self.variants:
            if result.variant.name == name:
                return result
        raise TinyzooError(f"no measured variant {name!r}; measured: {', '.join(r.variant.name for r in self.variants)}")

    def to_dict(self) -> dict[str, Any]:
        variants = []
        for r in self.variants:
            entry = {"name": r.variant.name, "adapter": r.variant.adapter, **_options_record(r.variant)}
            entry.update({metric: self.summary(r, metric) for metric in METRICS})
            entry.update(val_top1=r.val_top1, seconds=round(r.seconds, 2))
            variants.append(entry)
        return {
            "architecture": self.architecture, "weights": self.weights, "photos": self.photos, **self.settings,
            "teacher_val_top1": self.teacher_val_top1, "variants": variants, "skipped": self.skipped,
        }

    def rows(self) -> list[list[str]]:
        """Table rows: variant, top-1 and top-5 agreement and KL with their intervals, zero-shot val top-1."""
        rows = []
        for r in self.variants:
            cells = [r.variant.name]
            for metric in METRICS:
                s = self.summary(r, metric)
                cells.append(f"{s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]")
            cells.append("-" if r.val_top1 is None else f"{100 * r.val_top1:.2f}%")
            rows.append(cells)
        return rows


ROW_HEADERS = ("variant", "top-1 agreement", "top-5 agreement", "KL(teacher||student)", "zero-shot val top-1")


def _options_record(variant: Variant) -> dict[str, Any]:
    o = variant.options
    return {"stem": o.get("stem"), "kernel_resize": o.get("kernel_resize"), "resize_mode": o.get("resize_mode"),
            "recalibrate_bn": o.get("recalibrate_bn"), "experimental": variant.build is not None}


# -- the measurement --------------------------------------------------------------------------------
@dataclass
class Inputs:
    """What every variant is measured on: the photo views, the calibration views, the teacher's
    logits, and (with ``--data``) validation images and labels in ImageNet-1k rows."""

    spec: Any
    loaded: Any
    views: Any
    calibration: Any
    teacher: np.ndarray
    val_images: np.ndarray | None = None
    val_rows: np.ndarray | None = None
    val_labels: np.ndarray | None = None


def prepare(arch: str, photos, *, weights=None, offline=None, crops_per_photo=CROPS_PER_PHOTO,
            calibration_per_photo=CALIBRATION_PER_PHOTO, view="full", seed=0, device=None) -> Inputs:
    """Load the weights once, draw the crops, and run the teacher on them."""
    import tinyzoo
    from tinyzoo.data.photos import box_views, random_boxes
    from tinyzoo.registry import get_registry
    from tinyzoo.weights import load_weights

    spec = get_registry().architecture(arch)
    if crops_per_photo < 1 or calibration_per_photo < 1:
        raise TinyzooError("crops per photo and calibration crops per photo must be at least 1")
    loaded = load_weights(weights, spec, offline=offline)
    if loaded.state_dict is None:
        raise TinyzooError(f"fidelity compares adapted networks with the original's predictions; {spec.name} needs pretrained weights, not 'none'")
    boxes = random_boxes(photos, crops_per_photo, np.random.default_rng([seed, 0]))
    views = box_views(photos, boxes, view=view, native=spec.input_size, source="measured crops")
    cal_boxes = random_boxes(photos, calibration_per_photo, np.random.default_rng([seed, 1]))
    calibration = box_views(photos, cal_boxes, view=view, native=spec.input_size,
                            source=f"{len(cal_boxes)} calibration crops of {len(photos)} photos")
    teacher = tinyzoo.create(spec.name, stem="keep", classes=spec.num_classes, weights=loaded)
    assert views.native is not None  # box_views made them with native=
    teacher_logits = logits(teacher, views.native, spec.mean, spec.std, device=device, desc=f"{spec.name} at {spec.input_size} px")
    return Inputs(spec, loaded, views, calibration, teacher_logits)


def add_validation(inputs: Inputs, data: str, *, count=VAL_IMAGES, seed=0, device=None) -> float:
    """Attach ``count`` validation images of the Tiny ImageNet folder ``data``; returns the
    teacher's zero-shot top-1 on them (upsampled to its native size)."""
    import tinyzoo
    from tinyzoo.data.cache import open_split
    from tinyzoo.data.photos import array_views
    from tinyzoo.wordnet import imagenet_indices, missing_from_imagenet

    split = open_split(data, "val")
    missing = missing_from_imagenet(split.wnids)
    if missing:
        raise TinyzooError(f"{data}: {len(missing)} wnids are not ImageNet-1k classes (e.g. {missing[0]}); zero-shot top-1 needs ImageNet wnids")
    rng = np.random.default_rng([seed, 3])
    chosen = np.sort(rng.choice(len(split), size=min(count, len(split)), replace=False))
    spec = inputs.spec
    views = array_views(split.images[chosen], view=inputs.views.view, native=spec.input_size, source=f"{data} val")
    inputs.val_images, inputs.val_labels = views.small, np.asarray(split.labels)[chosen]
    inputs.val_rows = np.asarray(imagenet_indices(split.wnids))
    teacher = tinyzoo.create(spec.name, stem="keep", classes=spec.num_classes, weights=inputs.loaded)
    assert views.native is not None  # array_views made them with native=
    return zero_shot(logits(teacher, views.native, spec.mean, spec.std, device=device, desc=f"{spec.name} on {data} val"), inputs)


def zero_shot(scores: np.ndarray, inputs: Inputs) -> float:
    """Top-1 accuracy of ImageNet-1k logits on the validation labels, through the wnid rows."""
    predicted = scores[:, inputs.val_rows].argmax(1)
    return float((predicted == inputs.val_labels).mean())


def student(variant: Variant, inputs: Inputs):
    """The adapted network ``variant`` names, with the ImageNet-1k head kept."""
    import tinyzoo

    if variant.build is not None:
        return variant.build(inputs.loaded, inputs.calibration)
    options = dict(variant.options)
    if options.get("recalibrate_bn"):
        options["calibration"] = inputs.calibration
    return tinyzoo.create(inputs.spec.name, classes=inputs.spec.num_classes, weights=inputs.loaded, **options)


def resamples_kernels(model) -> bool:
    """Whether ``stem small`` resampled a kernel in ``model`` (if not, every kernel resampling gives the same network)."""
    report = getattr(model, "tinyzoo_report", None)
    return report is None or any(t.status == "resampled" and (t.adapter or "").startswith("stem-small") for t in report.tensors)


def run_variant(variant: Variant, inputs: Inputs, *, device=None, model=None) -> VariantResult:
    """Measure one variant on ``inputs`` (built here unless ``model`` is given)."""
    start = time.perf_counter()
    model = model if model is not None else student(variant, inputs)
    spec, views = inputs.spec, inputs.views
    scores = crop_scores(inputs.teacher, logits(model, views.small, spec.mean, spec.std, device=device))
    photos = int(views.photo.max()) + 1
    means = {m: np.array([scores[m][views.photo == p].mean() for p in range(photos)]) for m in METRICS}
    val = None
    if inputs.val_images is not None:
        val = zero_shot(logits(model, inputs.val_images, spec.mean, spec.std, device=device), inputs)
    config = {k: v for k, v in (getattr(model, "tinyzoo_config", None) or {}).items() if k != "report"}
    return VariantResult(variant, means, len(views), val, time.perf_counter() - start, config)


def measure(arch: str, photos, *, weights=None, offline=None, variants=None, bn=FIDELITY_BN_CHOICES, patterns=(),
            crops_per_photo=CROPS_PER_PHOTO, calibration_per_photo=CALIBRATION_PER_PHOTO, view="full", seed=0,
            bootstrap=BOOTSTRAP, data=None, val_images=VAL_IMAGES, device=None, desc="fidelity") -> FidelityResult:
    """Measure every variant of ``arch`` (default: :func:`variants_for` its spec) on ``photos``
    (a list of :class:`tinyzoo.data.photos.Photo`); see the module docstring."""
    from tinyzoo.console import progress

    inputs = prepare(arch, photos, weights=weights, offline=offline, crops_per_photo=crops_per_photo,
                     calibration_per_photo=calibration_per_photo, view=view, seed=seed, device=device)
    teacher_val = add_validation(inputs, data, count=val_images, seed=seed, device=device) if data else None
    variants = list(variants) if variants is not None else variants_for(inputs.spec, bn=bn, patterns=patterns)
    settings = {
        "view": view, "input_size": int(inputs.views.small.shape[1]), "native_size": inputs.spec.input_size,
        "crops_per_photo": crops_per_photo, "calibration_crops_per_photo": calibration_per_photo, "seed": seed,
        "bootstrap": bootstrap, "confidence": CONFIDENCE,
        "val_images": None if inputs.val_images is None else len(inputs.val_images),
    }
    result = FidelityResult(inputs.spec.name, inputs.loaded.to_config(), [p.name for p in photos], settings,
                            bootstrap_samples(len(photos), bootstrap, seed), teacher_val_top1=teacher_val)
    same_network: dict[tuple, str] = {}
    with progress(variants, desc=desc, unit="variant") as bar:
        for variant in bar:
            key = _without_kernel_resize(variant)
            if key in same_network:
                result.skipped.append({"name": variant.name, "why": f"the same network as {same_network[key]}: stem small resamples no kernel of {inputs.spec.name}"})
                continue
            model = student(variant, inputs)
            if variant.options.get("stem") == "small" and not resamples_kernels(model):
                same_network[key] = variant.name
            result.variants.append(run_variant(variant, inputs, device=device, model=model))
    return result


def _without_kernel_resize(variant: Variant) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in variant.options.items() if k != "kernel_resize")) + (variant.build is not None,)
