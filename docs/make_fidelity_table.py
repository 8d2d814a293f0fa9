"""Measure the figures of docs/fidelity.md and draw docs/img/fidelity.png, on real weights and photos.

Everything runs offline from test-only packages (tests/real_weights.py): EfficientNet-Lite0
(and, with --lite12, Lite1 and Lite2) ImageNet weights converted to timm-keyed safetensors, and
the photographs scikit-image and matplotlib ship. Each section of docs/fidelity.md between
``<!-- make_fidelity_table: NAME -->`` and ``<!-- /make_fidelity_table: NAME -->`` is rewritten:

- ``main``: ``tinyzoo fidelity`` on Lite0 (16 crops per photo), every registered stem
  (``small`` and ``small-up2`` included) plus the hand-made stride-removal variants measured
  before those stems existed (kept for comparison);
- ``differences``: paired differences between variants, with their bootstrap intervals;
- ``kernels``: how much of each stem filter's response ``pi`` and ``bicubic`` keep on the photos;
- ``lite12``: the same comparison on Lite1 and Lite2 (with --lite12);
- ``pin``: the small fixed crop set tests/test_fidelity.py measures and compares with.

    .venv/bin/python docs/make_fidelity_table.py            # about 5 minutes on 2 CPU cores
    .venv/bin/python docs/make_fidelity_table.py --lite12   # plus Lite1 and Lite2
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from real_weights import LITE_ARCH, write_lite_safetensors, write_photos  # noqa: E402

import tinyzoo  # noqa: E402
from tinyzoo.data.photos import box_views, random_boxes, read_photos  # noqa: E402
from tinyzoo.evaluate import fidelity  # noqa: E402
from tinyzoo.registry import get_registry  # noqa: E402
from tinyzoo.surgery.batchnorm import recalibrate_views, reference_moments  # noqa: E402
from tinyzoo.surgery.kernels import resample_kernel  # noqa: E402

DOC = REPO / "docs" / "fidelity.md"
FIGURE = REPO / "docs" / "img" / "fidelity.png"
WORK = Path(tempfile.gettempdir()) / "tinyzoo-fidelity-docs"
MAIN = {"crops_per_photo": 16, "calibration_per_photo": 8, "view": "full", "seed": 0}
# What tests/test_fidelity.py measures; keep the two in step.
PIN = {"crops_per_photo": 2, "calibration_per_photo": 2, "view": "full", "seed": 0, "bootstrap": 200}
PIN_BN = ("none", "relative")  # plain is measured in the main table; the pin stays under half a minute
PIN_PATTERNS = ("keep*", "resize/bicubic*", "small/pi*", "small-up2/pi*")  # one variant per stem


# -- experimental stems (not registered) ------------------------------------------------------------
def stride_removal(arch: str, kernel: str | None = None, bn: str | None = None):
    """EfficientNet without the strides of ``conv_stem`` and of the first block of stage 1, so that
    56 px input meets stage 1 at 56x56 as 224 px does; with ``kernel``, ``conv_stem``'s 3x3 is
    also resampled to 1x1 (a 3x3 window at 56 px covers 12 px of the 224 px image, not 3)."""

    def build(loaded, calibration):
        spec = get_registry().architecture(arch)
        model = tinyzoo.create(arch, stem="keep", classes=spec.num_classes, weights=loaded)
        reference = None
        if bn == "relative":
            key = (spec.name, loaded.source, loaded.sha256, calibration.view)
            reference = reference_moments(model, calibration, spec.mean, spec.std, key=key)
        with torch.no_grad():
            model.conv_stem.stride = (1, 1)
            if kernel:
                old = model.conv_stem
                new = nn.Conv2d(old.in_channels, old.out_channels, 1, bias=old.bias is not None)
                new.weight = nn.Parameter(resample_kernel(old.weight, 1, kernel)[0])
                model.conv_stem = new
            model.blocks[1][0].conv_dw.stride = (1, 1)
        if bn:
            recalibrate_views(model, calibration, bn, spec.mean, spec.std, reference)
        return model

    return build


def experimental_variants(arch: str, bn=fidelity.FIDELITY_BN_CHOICES) -> list[fidelity.Variant]:
    variants = []
    for label, kernel in (("exp:stride/3x3 kept", None), ("exp:stride/1x1 pi", "pi"), ("exp:stride/1x1 bicubic", "bicubic")):
        for choice in bn:
            name = label if choice == "none" else f"{label} +bn {choice}"
            options = {"recalibrate_bn": None if choice == "none" else choice}
            variants.append(fidelity.Variant(name, options, stride_removal(arch, kernel, options["recalibrate_bn"])))
    return variants


# -- tables -------------------------------------------------------------------------------------------
def fmt(s: dict, digits: int = 2) -> str:
    return f"{s['mean']:.{digits}f} [{s['low']:.{digits}f}, {s['high']:.{digits}f}]"


def result_table(result) -> str:
    lines = ["| variant | top-1 agreement | top-5 agreement | KL(teacher \\|\\| student) |", "|---|---|---|---|"]
    for r in result.variants:
        cells = [fmt(result.summary(r, m)) for m in fidelity.METRICS]
        lines.append(f"| `{r.variant.name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pin_table(result) -> str:
    lines = ["| variant | top-1 agreement | top-5 agreement | KL |", "|---|---|---|---|"]
    for r in result.variants:
        cells = [f"{result.summary(r, m)['mean']:.4f}" for m in fidelity.METRICS]
        lines.append(f"| `{r.variant.name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def differences_table(result) -> str:
    pairs = []
    for r in result.variants:
        name = r.variant.name
        base = r.variant.adapter if " +bn " in name else None
        if base and any(v.variant.name == base for v in result.variants):
            pairs.append((name, base))
    for a, b in (("exp:stride/1x1 pi", "exp:stride/1x1 bicubic"), ("exp:stride/1x1 pi +bn relative", "exp:stride/1x1 bicubic +bn relative"),
                 ("resize/bicubic", "resize/bilinear"), ("resize/bicubic +bn relative", "resize/bilinear +bn relative"),
                 ("exp:stride/3x3 kept", "exp:stride/1x1 pi"), ("exp:stride/3x3 kept +bn relative", "exp:stride/1x1 pi +bn relative")):
        if all(any(v.variant.name == n for v in result.variants) for n in (a, b)):
            pairs.append((a, b))
    lines = ["| variant | minus | top-1 agreement | KL |", "|---|---|---|---|"]
    for a, b in pairs:
        lines.append(f"| `{a}` | `{b}` | {fmt(result.difference(a, b, 'top1_agreement'))} | {fmt(result.difference(a, b, 'kl'))} |")
    return "\n".join(lines)


# -- kernel resampling on filters alone -------------------------------------------------------------
def gabor_bank(k: int, count: int = 64, seed: int = 0) -> torch.Tensor:
    """(count, 3, k, k) first-layer-like filters: a quarter each of grey Gabors, colour-opponent
    Gabors, colour blobs and grey first-derivative edges, with Gaussian envelopes of sigma k/6."""
    rng = np.random.default_rng(seed)
    c = (k - 1) / 2
    y, x = np.mgrid[0:k, 0:k] - c
    sigma = k / 6
    filters = []
    for i in range(count):
        theta, wavelength, phase = rng.uniform(0, np.pi), rng.uniform(k / 3, k), rng.uniform(0, 2 * np.pi)
        u = x * np.cos(theta) + y * np.sin(theta)
        envelope = np.exp(-(x**2 + y**2) / (2 * sigma**2))
        kind = i % 4
        if kind == 0:
            spatial, colour = envelope * np.cos(2 * np.pi * u / wavelength + phase), np.ones(3)
        elif kind == 1:
            spatial, colour = envelope * np.cos(2 * np.pi * u / wavelength + phase), np.array([1.0, -1.0, 0.0])[rng.permutation(3)]
        elif kind == 2:
            spatial, colour = envelope, rng.normal(size=3)
        else:
            spatial, colour = -u / sigma**2 * envelope, np.ones(3)
        filters.append(colour[:, None, None] * spatial[None])
    return torch.tensor(np.stack(filters), dtype=torch.float32)


def response_fidelity(weight, stride, padding, new_kernel, method, big) -> tuple[float, float]:
    """(median correlation, median std ratio) over filters between the old filter's response on the
    224 px images (resized to the new map's size) and the resampled filter's on the images at 56 px."""
    small = F.interpolate(big, size=(56, 56), mode="bicubic", align_corners=False, antialias=True)
    old = F.conv2d(big, weight, stride=stride, padding=padding)
    if method == "kept":
        new_weight = weight
    else:
        new_weight = resample_kernel(weight, new_kernel, method)[0]
    new_stride = 1 if stride < 8 else new_kernel
    new = F.conv2d(small, new_weight, stride=new_stride, padding=new_weight.shape[-1] // 2 if new_stride == 1 else 0)
    ratio = new.transpose(0, 1).flatten(1).std(1) / old.transpose(0, 1).flatten(1).std(1)
    if old.shape[-1] != new.shape[-1]:
        old = F.interpolate(old, size=new.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    a, b = old.transpose(0, 1).flatten(1), new.transpose(0, 1).flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return float(corr.median()), float(ratio.median())


def kernel_table(photos, lite0_stem: torch.Tensor) -> str:
    boxes = random_boxes(photos, MAIN["crops_per_photo"], np.random.default_rng([MAIN["seed"], 0]))
    native = box_views(photos, boxes, view="full", native=224).native
    big = torch.from_numpy(native).permute(0, 3, 1, 2).float() / 127.5 - 1
    cases = [
        ("resnet-like 7x7/2 -> 3x3/1", "Gabor bank", gabor_bank(7), 2, 3, 3),
        ("alexnet-like 11x11/4 -> 3x3/1", "Gabor bank", gabor_bank(11), 4, 2, 3),
        ("vit-like 16x16/16 -> 4x4/4", "Gabor bank", gabor_bank(16), 16, 0, 4),
        ("Lite0 conv_stem 3x3/2 -> 1x1/1", "real (ImageNet)", lite0_stem, 2, 1, 1),
    ]
    lines = ["| stem | filters | correlation, bicubic | correlation, pi | response std kept, bicubic | response std kept, pi |",
             "|---|---|---|---|---|---|"]
    for label, kind, weight, stride, padding, new_kernel in cases:
        (cb, sb), (cp, sp) = (response_fidelity(weight, stride, padding, new_kernel, m, big) for m in ("bicubic", "pi"))
        lines.append(f"| {label} | {kind} | {cb:.2f} | {cp:.2f} | {sb:.2f} | {sp:.2f} |")
    ck, sk = response_fidelity(lite0_stem, 2, 1, 3, "kept", big)
    lines.append(f"| Lite0 conv_stem 3x3/2 -> 3x3/1, kept | real (ImageNet) | {ck:.2f} (kept) | | {sk:.2f} (kept) | |")
    return "\n".join(lines)


# -- writing ------------------------------------------------------------------------------------------
def replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- make_fidelity_table: {name} -->", f"<!-- /make_fidelity_table: {name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no section {start} ... {end}")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def measure(arch, weights, photos, settings, variants=None, bn=fidelity.FIDELITY_BN_CHOICES, patterns=()):
    start = time.perf_counter()
    result = fidelity.measure(arch, photos, weights=str(weights), variants=variants, bn=bn, patterns=patterns, **settings)
    print(f"{arch}: {len(result.variants)} variants in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    dump = WORK / f"{arch.replace(':', '_')}-{settings['crops_per_photo']}.json"
    dump.write_text(json.dumps(result.to_dict(), indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lite12", action="store_true", help="also measure Lite1 and Lite2")
    args = parser.parse_args()
    torch.manual_seed(0)
    photos_dir = write_photos(WORK / "photos")
    photos = read_photos(photos_dir)
    weights = {v: write_lite_safetensors(WORK / f"{v}.safetensors", v) for v in (("lite0", "lite1", "lite2") if args.lite12 else ("lite0",))}
    arch = LITE_ARCH["lite0"]
    spec = get_registry().architecture(arch)
    text = DOC.read_text()

    pin = measure(arch, weights["lite0"], photos, PIN, bn=PIN_BN, patterns=PIN_PATTERNS)
    text = replace_section(text, "pin", pin_table(pin))
    main_variants = fidelity.variants_for(spec) + experimental_variants(arch)
    result = measure(arch, weights["lite0"], photos, MAIN, variants=main_variants)
    text = replace_section(text, "main", result_table(result))
    text = replace_section(text, "differences", differences_table(result))
    from tinyzoo.evaluate.fidelity_figure import draw

    draw(result, FIGURE)
    stem = tinyzoo.create(arch, stem="keep", classes=1000, weights=str(weights["lite0"])).conv_stem.weight.detach()
    text = replace_section(text, "kernels", kernel_table(photos, stem))
    if args.lite12:
        tables = []
        for variant in ("lite1", "lite2"):
            name = LITE_ARCH[variant]
            chosen = fidelity.variants_for(get_registry().architecture(name), bn=("none", "relative"))
            r = measure(name, weights[variant], photos, MAIN, variants=chosen + experimental_variants(name, ("none", "relative")))
            tables.append(f"`{name}` (native {r.settings['native_size']} px):\n\n" + result_table(r))
        text = replace_section(text, "lite12", "\n\n".join(tables))
    DOC.write_text(text)
    print(f"wrote {DOC} and {FIGURE}", file=sys.stderr)


if __name__ == "__main__":
    main()
