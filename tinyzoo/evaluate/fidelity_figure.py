"""The picture of a fidelity measurement: per variant, agreement with the teacher and KL, with intervals."""

from __future__ import annotations

from pathlib import Path

PANELS = (("top1_agreement", "top-1 agreement"), ("top5_agreement", "top-5 agreement"), ("kl", "KL(teacher || student), nats"))
COLOURS = {None: "#4c72b0", "relative": "#55a868", "plain": "#c44e52"}


def draw(result, path) -> Path:
    """Three panels side by side (top-1, top-5 agreement, KL), one bar per variant with its bootstrap interval."""
    from tinyzoo.evaluate.figures import new_figure, save_figure

    names = [r.variant.name for r in result.variants]
    height = 1.2 + 0.32 * len(names)
    fig, axes = new_figure(13, height, 1, len(PANELS), sharey=True)
    positions = list(range(len(names)))[::-1]
    for ax, (metric, title) in zip(axes, PANELS):
        for y, r in zip(positions, result.variants):
            s = result.summary(r, metric)
            colour = COLOURS.get(r.variant.options.get("recalibrate_bn"), COLOURS[None])
            ax.barh(y, s["mean"], color=colour, height=0.7)
            ax.errorbar(s["mean"], y, xerr=[[s["mean"] - s["low"]], [s["high"] - s["mean"]]], color="black", capsize=2, lw=1)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if metric != "kl":
            ax.set_xlim(0, 1)
    axes[0].set_yticks(positions)
    axes[0].set_yticklabels(names, fontsize=8)
    settings = result.settings
    fig.suptitle(
        f"{result.architecture}: students at {settings['input_size']} px vs the original at {settings['native_size']} px "
        f"({len(result.photos)} photos x {settings['crops_per_photo']} crops, {int(100 * settings['confidence'])}% bootstrap intervals over photos)",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)
