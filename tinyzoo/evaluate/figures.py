"""Matplotlib figures drawn off-screen (Agg) for the evaluation pictures.

Figures are built with :class:`matplotlib.figure.Figure` directly, never through
``pyplot``, so no global figure state or display backend is involved.
"""

from __future__ import annotations

from pathlib import Path

from tinyzoo.atomic_files import atomic_path

DPI = 100


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1, **subplot_kw):
    """A ``(figure, axes)`` pair of ``width x height`` inches; ``axes`` is one Axes for 1x1,
    else a ``rows x cols`` array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(rows, cols, squeeze=True, **subplot_kw)
    return fig, axes


def save_figure(fig, path) -> Path:
    """Write ``fig`` as an optimised PNG at ``path`` (parent folders created); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, pil_kwargs={"optimize": True})
    return path
