"""Accuracy figures from class probabilities and labels (numpy arrays, no torch).

``probs`` is ``(N, K)`` (any score whose larger is better), ``labels`` is ``(N,)`` class
indices in the same K-class order; a label of ``-1`` (an unlabelled test image) is never
counted.
"""

from __future__ import annotations

import numpy as np

from tinyzoo.errors import TinyzooError


def top1_predictions(probs) -> np.ndarray:
    """The argmax class of every row: ``(N,)`` int64 (ties go to the lower index)."""
    return np.asarray(probs).argmax(axis=1).astype(np.int64)


def topk_indices(probs, k: int) -> np.ndarray:
    """The ``k`` best classes of every row, best first: ``(N, k)`` int64."""
    probs = np.asarray(probs)
    k = min(k, probs.shape[1])
    # a stable sort of the negated scores keeps the lower index first on ties, like argmax
    return np.argsort(-probs, axis=1, kind="stable")[:, :k].astype(np.int64)


def topk_hits(probs, labels, k: int = 1) -> int:
    """How many labelled rows have their label among their ``k`` best classes."""
    probs, labels = _check(probs, labels)
    mask = labels >= 0
    return int((topk_indices(probs[mask], k) == labels[mask, None]).any(axis=1).sum())


def topk_accuracy(probs, labels, k: int = 1) -> float:
    """The fraction of labelled rows whose label is among their ``k`` best classes."""
    labelled = int((np.asarray(labels) >= 0).sum())
    if not labelled:
        _check(probs, labels)
        raise TinyzooError("no labelled images to score (the test split has no labels; use --split val)")
    return topk_hits(probs, labels, k) / labelled


def per_class_accuracy(predictions, labels, num_classes: int) -> np.ndarray:
    """Top-1 accuracy of each class over its labelled images: ``(K,)``, ``nan`` for a class
    with no image."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    mask = labels >= 0
    totals = np.bincount(labels[mask], minlength=num_classes).astype(np.float64)
    correct = np.bincount(labels[mask & (predictions == labels)], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, correct / np.maximum(totals, 1), np.nan)


def confusion_matrix(predictions, labels, num_classes: int) -> np.ndarray:
    """Counts ``(K, K)`` int64: row = true class, column = predicted class."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    mask = labels >= 0
    flat = labels[mask] * num_classes + predictions[mask]
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes).astype(np.int64)


def summary(probs, labels, class_names: list[str] | None = None) -> dict:
    """``{"images", "top1", "top5", "per_class": {name: accuracy}}`` (accuracies as fractions;
    only classes with labelled images appear in ``per_class``)."""
    probs, labels = _check(probs, labels)
    num_classes = probs.shape[1]
    names = class_names or [str(i) for i in range(num_classes)]
    per_class = per_class_accuracy(top1_predictions(probs), labels, num_classes)
    return {
        "images": int((labels >= 0).sum()),
        "top1": topk_accuracy(probs, labels, 1),
        "top5": topk_accuracy(probs, labels, 5),
        "per_class": {names[i]: float(a) for i, a in enumerate(per_class) if not np.isnan(a)},
    }


def _check(probs, labels):
    probs, labels = np.asarray(probs), np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise TinyzooError(f"scores {probs.shape} and labels {labels.shape} do not match: need (N, K) and (N,)")
    if labels.size and labels.max() >= probs.shape[1]:
        raise TinyzooError(f"label {int(labels.max())} is out of range for {probs.shape[1]} classes")
    return probs, labels
