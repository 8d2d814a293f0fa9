"""Error analysis as the reports did it: tables of per-class errors and confusions, and pictures.

- :func:`class_error_table`: every class's error rate, worst first, with how many distinct
  wrong classes its images went to (Milani: plunger errors spread over 20 classes,
  convertible's over 8).
- :func:`confused_pairs`: the (true, predicted) pairs with the most images.
- :func:`misclassified_grid`: misclassified images, true name above, predicted below (Zhai's
  Figure 8), the most confident mistakes first.
- :func:`filter_grid` / :func:`filters_before_after`: first-layer filters (Zhai's Figure 7,
  Kim's Figure 2), alone or before and after adaptation side by side.
- :func:`confusion_png`: the row-normalised confusion matrix.
- :func:`filters_of`: the filters of a MODEL or of an architecture's ImageNet weights, to
  draw beside the adapted model's.
- :func:`write_report`: all of it in one folder with an ``index.html`` tying it together.

Tables are plain lists of dicts; pictures are PNGs drawn with matplotlib's Agg canvas.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from tinyzoo.atomic_files import write_atomic
from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate import metrics
from tinyzoo.evaluate.figures import new_figure, save_figure

PICTURES = {
    "misclassified": "misclassified.png",
    "confusion": "confusion.png",
    "filters": "filters.png",
    "filters_before_after": "filters_before_after.png",
}


def short_name(name: str) -> str:
    """The first of words.txt's comma-separated names: ``'plunger, plumber's helper'`` -> ``'plunger'``."""
    return name.split(",")[0].strip() or name


def class_error_table(predictions, labels, class_wnids: list[str], class_names: list[str], top_confusions: int = 3) -> list[dict]:
    """One row per class with labelled images, worst first (error rate, then distinct wrong
    classes, then wnid): ``wnid``, ``name``, ``images``, ``errors``, ``error_rate``,
    ``distinct_wrong`` and ``confused_with`` (up to ``top_confusions`` ``{"wnid", "name",
    "count"}``, most frequent first)."""
    cm = metrics.confusion_matrix(predictions, labels, len(class_wnids))
    rows: list[dict[str, Any]] = []
    for k in np.nonzero(cm.sum(axis=1))[0]:
        row = cm[k].copy()
        images = int(row.sum())
        correct = int(row[k])
        row[k] = 0
        wrong = sorted(np.nonzero(row)[0], key=lambda j: (-row[j], j))
        rows.append({
            "wnid": class_wnids[k],
            "name": class_names[k],
            "images": images,
            "errors": images - correct,
            "error_rate": (images - correct) / images,
            "distinct_wrong": len(wrong),
            "confused_with": [{"wnid": class_wnids[j], "name": class_names[j], "count": int(row[j])} for j in wrong[:top_confusions]],
        })
    rows.sort(key=lambda r: (-r["error_rate"], -r["distinct_wrong"], r["wnid"]))
    return rows


def confused_pairs(predictions, labels, class_wnids: list[str], class_names: list[str], top: int = 20) -> list[dict]:
    """The ``top`` off-diagonal (true, predicted) pairs by count, most first (ties by class
    index): ``true_wnid``, ``true_name``, ``predicted_wnid``, ``predicted_name``, ``count``,
    ``share`` (of the true class's images)."""
    cm = metrics.confusion_matrix(predictions, labels, len(class_wnids))
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = []
    for index in flat:
        t, p = divmod(int(index), off.shape[1])
        if off[t, p] == 0:
            break
        pairs.append({
            "true_wnid": class_wnids[t], "true_name": class_names[t],
            "predicted_wnid": class_wnids[p], "predicted_name": class_names[p],
            "count": int(off[t, p]), "share": float(off[t, p] / cm[t].sum()),
        })
    return pairs


def misclassified_indices(probs, labels, count: int) -> np.ndarray:
    """Up to ``count`` misclassified labelled rows, the most confident mistakes first."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    predictions = metrics.top1_predictions(probs)
    wrong = np.nonzero((labels >= 0) & (predictions != labels))[0]
    confidence = probs[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def misclassified_grid(images, probs, labels, class_names: list[str], path, *, count: int = 24, cols: int = 6) -> Path | None:
    """Zhai's Figure 8 as a PNG: misclassified images (uint8 ``(N, H, W, 3)``), true name on
    top, predicted name and probability below. Returns the path, or None when nothing is
    misclassified."""
    chosen = misclassified_indices(probs, labels, count)
    if not len(chosen):
        return None
    predictions = metrics.top1_predictions(probs)
    cols = min(cols, len(chosen))
    rows = -(-len(chosen) // cols)
    fig, axes = new_figure(1.45 * cols, 1.75 * rows, rows, cols)
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, chosen):
        p = int(predictions[i])
        ax.imshow(np.asarray(images[i]), interpolation="nearest")
        ax.set_title(_fit(short_name(class_names[int(labels[i])])), fontsize=7, color="#1a7f37", pad=2)
        ax.text(0.5, -0.04, f"{_fit(short_name(class_names[p]))}\n{100 * float(probs[i][p]):.0f}%", transform=ax.transAxes,
                ha="center", va="top", fontsize=7, color="#cf222e")
    fig.suptitle("misclassified: true (top), predicted (bottom)", fontsize=8)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.35 / rows, bottom=0.2 / rows, hspace=0.75, wspace=0.1)
    return save_figure(fig, path)


def first_conv_weight(model, first_conv: str | None = None):
    """The first convolution's weight ``(out, in, kh, kw)`` as a CPU float tensor: the module
    named ``first_conv`` (default: the config's ``first_conv``, else its architecture's), else the first
    ``Conv2d`` taking 3 channels."""
    import torch

    config = getattr(model, "tinyzoo_config", None) or {}
    if first_conv is None:
        first_conv = config.get("first_conv") or _spec_first_conv(config.get("architecture"))
    module = None
    if first_conv:
        try:
            module = model.get_submodule(first_conv)
        except AttributeError:
            module = None
    if not isinstance(module, torch.nn.Conv2d):
        module = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels == 3), None)
    if module is None:
        raise TinyzooError("the model has no Conv2d taking 3 input channels, so it has no first-layer filters to draw")
    return module.weight.detach().float().cpu()


def filters_of(before: str, weights_source: str | None = None):
    """First-layer filters to draw beside a model's: ``before`` is a MODEL (an adapted-model or run
    directory, a Hub id), or an architecture name whose network is read with ``weights_source``
    (default: its ImageNet weights; ``none``: a reproducible random initialisation).
    Returns ``(weight, label)``."""
    from pathlib import Path

    from tinyzoo.evaluate import model_source

    if Path(before).expanduser().exists() or ("/" in before and not weights_source):
        source = model_source.resolve(before)
        return first_conv_weight(model_source.load(source)), f"before: {source.label}"
    from tinyzoo.builders import build
    from tinyzoo.registry import get_registry
    from tinyzoo.weights import load_weights

    spec = get_registry().architecture(before)
    loaded = load_weights(weights_source, spec)
    if loaded.state_dict is not None and spec.first_conv and f"{spec.first_conv}.weight" in loaded.state_dict:
        weight = loaded.state_dict[f"{spec.first_conv}.weight"].float()
    else:
        import torch

        torch.manual_seed(0)  # a reproducible picture of random initialisation
        network = build(spec)
        if loaded.state_dict is not None:
            network.load_state_dict(loaded.state_dict, strict=False)
        weight = first_conv_weight(network, spec.first_conv)
    return weight, f"before: {spec.name}, " + ("random initialisation" if loaded.state_dict is None else loaded.source)


def _spec_first_conv(architecture) -> str | None:
    if not architecture:
        return None
    from tinyzoo.registry import get_registry

    try:
        return get_registry().architecture(str(architecture)).first_conv
    except TinyzooError:
        return None


def filter_images(weight, limit: int = 64) -> np.ndarray:
    """Up to ``limit`` filters as ``(n, kh, kw, 3)`` images in 0..1, each scaled to its own
    min..max (RGB for 3-channel filters, gray otherwise)."""
    w = np.asarray(weight, dtype=np.float32)[:limit]
    if w.ndim != 4:
        raise TinyzooError(f"filters must be (out, in, kh, kw), got shape {w.shape}")
    w = w.transpose(0, 2, 3, 1) if w.shape[1] == 3 else np.repeat(w.mean(axis=1)[..., None], 3, axis=-1)
    low = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - low
    return (w - low) / np.where(span > 0, span, 1)


def filter_mosaic(weight, limit: int = 64) -> np.ndarray:
    """Up to ``limit`` filters (see :func:`filter_images`) tiled in a square-ish grid with
    one-pixel white gaps: ``(rows * (kh + 1) + 1, cols * (kw + 1) + 1, 3)`` in 0..1."""
    tiles = filter_images(weight, limit)
    n, kh, kw, _ = tiles.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    mosaic = np.ones((rows * (kh + 1) + 1, cols * (kw + 1) + 1, 3), dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        mosaic[1 + r * (kh + 1): 1 + r * (kh + 1) + kh, 1 + c * (kw + 1): 1 + c * (kw + 1) + kw] = tile
    return mosaic


def _draw_filters(ax, weight, title: str) -> None:
    ax.imshow(filter_mosaic(weight), interpolation="nearest")
    ax.axis("off")
    kh, kw = np.shape(weight)[2:]
    ax.set_title(f"{title}\n{np.shape(weight)[0]} filters {kh}x{kw}", fontsize=9)


def filter_grid(weight, path, title: str = "first-layer filters") -> Path:
    """Zhai's Figure 7 / Kim's Figure 2 as a PNG: up to 64 first-layer filters, each
    min-max scaled, drawn pixel for pixel."""
    fig, ax = new_figure(4.0, 4.4)
    _draw_filters(ax, weight, title)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.03, top=0.88)
    return save_figure(fig, path)


def filters_before_after(before, after, path, titles=("before adaptation", "after adaptation")) -> Path:
    """Two filter grids side by side in one PNG (e.g. the 7x7 ImageNet stem and the 3x3
    stem resampled from it)."""
    fig, axes = new_figure(8.0, 4.4, 1, 2)
    for ax, weight, title in ((axes[0], before, titles[0]), (axes[1], after, titles[1])):
        _draw_filters(ax, weight, title)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.88, wspace=0.08)
    return save_figure(fig, path)


def confusion_png(predictions, labels, class_names: list[str], path, *, max_labelled: int = 30) -> Path:
    """The confusion matrix as a PNG, each row divided by its class's images, over the
    classes that occur as a label or a prediction; class names on the axes when at most
    ``max_labelled`` classes occur."""
    num_classes = len(class_names)
    cm = metrics.confusion_matrix(predictions, labels, num_classes)
    used = np.nonzero(cm.sum(axis=0) + cm.sum(axis=1))[0]
    if not len(used):
        raise TinyzooError("no labelled images, so there is no confusion matrix to draw")
    cm = cm[np.ix_(used, used)].astype(np.float64)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = 4.5 if len(used) <= max_labelled else 6.0
    fig, ax = new_figure(side + 1.2, side, 1, 1)
    image = ax.imshow(share, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("share of the true class", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if len(used) <= max_labelled:
        names = [_fit(short_name(class_names[k]), 16) for k in used]
        ax.set_xticks(range(len(used)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(used)), names, fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel("predicted class", fontsize=8)
    ax.set_ylabel("true class", fontsize=8)
    ax.set_title(f"confusion matrix ({len(used)} classes)", fontsize=9)
    labelled = len(used) <= max_labelled
    fig.subplots_adjust(left=0.22 if labelled else 0.06, bottom=0.24 if labelled else 0.06, right=0.9, top=0.93)
    return save_figure(fig, path)


def write_report(
    out_dir,
    predictions,
    images,
    *,
    filters=None,
    before_filters=None,
    before_label: str = "before adaptation",
    after_label: str = "after adaptation",
    misclassified: int = 24,
    top_pairs: int = 20,
) -> dict:
    """Write the whole analysis of ``predictions`` (a :class:`~tinyzoo.evaluate.predictions.Predictions`
    over ``images``, uint8 ``(N, H, W, 3)``) to ``out_dir``: ``class_errors.csv``,
    ``confused_pairs.csv``, ``analysis.json``, the PNGs of :data:`PICTURES` (filters when
    given) and ``index.html``. Returns the ``analysis.json`` data (with ``files``: name -> path)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not predictions.labelled:
        raise TinyzooError("the analysis needs labels; the test split has none (use --split val)")
    preds, labels = predictions.predictions, predictions.labels
    wnids, names = predictions.class_wnids, predictions.class_names
    table = class_error_table(preds, labels, wnids, names)
    pairs = confused_pairs(preds, labels, wnids, names, top_pairs)
    summary = predictions.summary()
    files = write_tables(out, table, pairs)
    if misclassified_grid(images, predictions.probs, labels, names, out / PICTURES["misclassified"], count=misclassified):
        files["misclassified"] = PICTURES["misclassified"]
    confusion_png(preds, labels, names, out / PICTURES["confusion"])
    files["confusion"] = PICTURES["confusion"]
    if filters is not None:
        filter_grid(filters, out / PICTURES["filters"], title=f"first-layer filters ({after_label})")
        files["filters"] = PICTURES["filters"]
    if filters is not None and before_filters is not None:
        filters_before_after(before_filters, filters, out / PICTURES["filters_before_after"], (before_label, after_label))
        files["filters_before_after"] = PICTURES["filters_before_after"]

    data = {
        "source": predictions.source,
        "views": predictions.views,
        "combine": predictions.combine,
        "images": summary["images"],
        "top1": summary["top1"],
        "top5": summary["top5"],
        "class_errors": table,
        "confused_pairs": pairs,
        "filter_labels": [before_label, after_label] if before_filters is not None else [after_label],
        "files": files,
    }
    write_atomic(out / "analysis.json", json.dumps(data, indent=2))
    files["json"] = "analysis.json"
    write_atomic(out / "index.html", render_html(data))
    files["html"] = "index.html"
    return data


def write_tables(out: Path, table: list[dict], pairs: list[dict]) -> dict[str, str]:
    """class_errors.csv and confused_pairs.csv in ``out``; returns their names by key."""
    rows = [[r["wnid"], r["name"], r["images"], r["errors"], f"{r['error_rate']:.4f}", r["distinct_wrong"],
             "; ".join(f"{c['name']} ({c['count']})" for c in r["confused_with"])] for r in table]
    write_atomic(out / "class_errors.csv", csv_text(["wnid", "name", "images", "errors", "error_rate", "distinct_wrong", "confused_with"], rows))
    rows = [[p["true_wnid"], p["true_name"], p["predicted_wnid"], p["predicted_name"], p["count"], f"{p['share']:.4f}"] for p in pairs]
    write_atomic(out / "confused_pairs.csv", csv_text(["true_wnid", "true_name", "predicted_wnid", "predicted_name", "count", "share"], rows))
    return {"class_errors": "class_errors.csv", "confused_pairs": "confused_pairs.csv"}


def csv_text(header: list[str], rows: list[list]) -> str:
    """``header`` and ``rows`` as CSV text (RFC 4180 quoting, ``\\r\\n`` line ends as the csv module writes)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def render_html(data: dict) -> str:
    """A self-contained HTML page for ``write_report``'s data, linking its PNGs and CSVs."""
    e = html.escape
    files = data["files"]
    parts = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8"><title>tinyzoo analysis</title>',
        "<style>body{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
        "td.n{text-align:right}img{max-width:100%;border:1px solid #eee}</style></head><body>",
        f"<h1>Error analysis: {e(data['source'] or 'model')}</h1>",
        f"<p>{data['images']} labelled images, views <b>{e(data['views'])}</b> combined by <b>{e(data['combine'])}</b>: "
        f"top-1 <b>{100 * data['top1']:.2f}%</b>, top-5 <b>{100 * data['top5']:.2f}%</b>.</p>",
    ]
    sections = [
        ("misclassified", "Misclassified images", "The most confident mistakes: true class on top, predicted class and its probability below (Zhai, Figure 8)."),
        ("confusion", "Confusion matrix", "Rows are true classes, columns predictions; each row divided by its class's images."),
        ("filters", "First-layer filters", "Each filter scaled to its own range (Zhai, Figure 7; Kim, Figure 2)."),
        ("filters_before_after", "First-layer filters compared", "Left: {0}; right: {1}."),
    ]
    labels = data.get("filter_labels") or []
    for key, title, caption in sections:
        if key == "filters_before_after" and len(labels) == 2:
            caption = caption.format(*labels)
        if key in files:
            parts.append(f'<h2>{e(title)}</h2><p>{e(caption)}</p><img src="{e(files[key])}" alt="{e(title)}">')
    parts.append("<h2>Per-class errors, worst first</h2>")
    parts.append(f'<p>Also as <a href="{e(files["class_errors"])}">class_errors.csv</a>. "Distinct wrong" counts the '
                 "different wrong classes a class's images were given (Milani's plunger vs convertible).</p>")
    parts.append("<table><tr><th>class</th><th>wnid</th><th>images</th><th>errors</th><th>error</th><th>distinct wrong</th><th>most often taken for</th></tr>")
    for r in data["class_errors"]:
        confused = ", ".join(f"{e(short_name(c['name']))} ({c['count']})" for c in r["confused_with"])
        parts.append(
            f"<tr><td>{e(short_name(r['name']))}</td><td>{e(r['wnid'])}</td><td class=n>{r['images']}</td><td class=n>{r['errors']}</td>"
            f"<td class=n>{100 * r['error_rate']:.1f}%</td><td class=n>{r['distinct_wrong']}</td><td>{confused}</td></tr>"
        )
    parts.append("</table>")
    parts.append(f'<h2>Most confused pairs</h2><p>Also as <a href="{e(files["confused_pairs"])}">confused_pairs.csv</a>.</p>')
    parts.append("<table><tr><th>true class</th><th>predicted as</th><th>images</th><th>share of the class</th></tr>")
    for p in data["confused_pairs"]:
        parts.append(f"<tr><td>{e(short_name(p['true_name']))}</td><td>{e(short_name(p['predicted_name']))}</td>"
                     f"<td class=n>{p['count']}</td><td class=n>{100 * p['share']:.1f}%</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def _fit(text: str, width: int = 18) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"
