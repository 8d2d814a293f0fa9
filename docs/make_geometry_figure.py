"""Draw docs/img/geometry.png: feature-map sizes per stage, native input vs ``--stem small`` at 56x56.

The sizes are measured, not typed: each network is adapted with ``tinyzoo.create`` (placeholder
weights, so nothing is downloaded) and forward hooks on the modules its spec lists as
``stages`` record their output sizes on the meta device. Also prints the same numbers as a
Markdown table for docs/adapters.md.

    .venv/bin/python docs/make_geometry_figure.py
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import tinyzoo
from tinyzoo.adapt import placeholder_model
from tinyzoo.registry import get_registry
from tinyzoo.surgery.stem import stage_sizes
from tinyzoo.weights import LoadedWeights

OUT = Path(__file__).resolve().parent / "img" / "geometry.png"
NETWORKS = [
    ("resnet18", "ResNet / ResNeXt / WRN"),
    ("densenet121", "DenseNet"),
    ("vgg16", "VGG"),
    ("alexnet", "AlexNet"),
    ("googlenet", "GoogLeNet"),
    ("inception_v3", "Inception-v3"),
    ("timm:vit_tiny_patch16_224", "ViT (timm)"),
]
VIT_STAGES = ("patch_embed",)


def side(shape: tuple[int, ...]) -> int:
    """The spatial side of a stage output: NCHW maps, or a ViT's tokens (flat or NHWC)."""
    if len(shape) == 3 and shape[0] > shape[-1] / 8:  # (C, H, W)
        return shape[-1]
    if len(shape) == 3:  # (H, W, C) from timm's dynamic patch embedding
        return shape[0]
    return int(math.isqrt(shape[0]))  # (tokens, C)


def measure(name: str) -> tuple[list[str], list[int], list[int]]:
    """Stage labels, native sizes (at the spec's input size) and small-stem sizes (at 56)."""
    spec = get_registry().architecture(name)
    stages = spec.stages or VIT_STAGES
    weights = LoadedWeights(placeholder_model(spec).state_dict(), "placeholder")
    native = tinyzoo.create(name, stem="keep", classes=1000, weights=weights)
    small = tinyzoo.create(name, stem="small", classes=1000, weights=weights)
    native_sizes = stage_sizes(native, stages, spec.input_size)
    small_sizes = stage_sizes(small, stages, 56)
    labels = ["input"] + list(stages)
    return (
        labels,
        [spec.input_size] + [side(native_sizes[s]) for s in stages],
        [56] + [side(small_sizes[s]) for s in stages],
    )


def main() -> None:
    torch.set_grad_enabled(False)
    rows = []
    fig, axes = plt.subplots(2, 4, figsize=(17, 8))
    for ax, (name, title) in zip(axes.flat, NETWORKS):
        labels, native, small = measure(name)
        rows.append((title, name, labels, native, small))
        x = range(len(labels))
        ax.plot(x, native, "o-", color="#1f77b4", label=f"native ({native[0]} px input)")
        ax.plot(x, small, "s--", color="#d62728", label="--stem small (56 px input)")
        for i, (a, b) in enumerate(zip(native, small)):
            up, down = (0, 7), (0, -13)
            ax.annotate(str(a), (i, a), textcoords="offset points", xytext=down if b > a else up, ha="center", fontsize=8, color="#1f77b4")
            if b != a:
                ax.annotate(str(b), (i, b), textcoords="offset points", xytext=up if b > a else down, ha="center", fontsize=8, color="#d62728")
        ax.set_yscale("log", base=2)
        ax.set_yticks([4, 8, 16, 32, 64, 128, 256])
        ax.get_yaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xticks(list(x))
        ax.set_xticklabels([label.replace("features.", "f.") for label in labels], rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{title}  ({name})", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    axes.flat[-1].axis("off")
    axes.flat[-1].text(
        0.02, 0.5,
        "Feature-map side per stage.\n\nThe small stem takes 56x56 crops and\n"
        "removes only the stem's downsampling,\nso every later stage sees the size it\n"
        "was trained on (Inception-v3: the nearest\nwhole-stride geometry, 46/22/10 vs 35/17/8).\n\n"
        "--stem resize feeds the native size:\nits curve is the native one.",
        fontsize=10, va="center",
    )
    fig.suptitle("tinyzoo: interior geometry, native input vs --stem small (measured with forward hooks)")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT}\n")
    print("| family | network | stage | " + " | ".join(["native", "small (56)"]) + " |")
    print("|---|---|---|---|---|")
    for title, name, labels, native, small in rows:
        for label, a, b in zip(labels, native, small):
            print(f"| {title} | {name} | `{label}` | {a} | {b} |")


if __name__ == "__main__":
    main()
