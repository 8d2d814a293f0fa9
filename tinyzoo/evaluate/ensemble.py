"""Ensembles of several models' class probabilities (numpy arrays, no torch).

Each member contributes ``(N, K)`` probabilities over the same K classes (the output of
:mod:`tinyzoo.evaluate.combine`, after its test-time views).

- :func:`majority_vote` (Zhai): every member's top-1 is a vote; the class with the most
  votes wins when it is alone at the top; when two or more classes share the most votes
  (all members disagreeing included) the fallback model's top-1 is taken.
- :func:`softmax_average` (Milani): the mean of the members' probabilities.
- :func:`greedy_size` (Milani): members sorted best-first by their own top-1, the
  average of the first ``n`` scored for every ``n``; the best size is the ``n`` with the
  highest top-1 (the smallest such ``n`` on a tie).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate.metrics import topk_accuracy


@dataclass
class VoteResult:
    """``scores`` ``(N, K)``: vote shares whose argmax is the ensemble's top-1 (the
    fallback's class on a tie; other classes ordered by votes, then mean probability);
    ``predictions`` ``(N,)``; ``used_fallback`` ``(N,)`` bool: rows decided by the fallback."""

    scores: np.ndarray
    predictions: np.ndarray
    used_fallback: np.ndarray


@dataclass
class SizeSelection:
    """Milani's choice of ensemble size. ``order``: member indices best-first;
    ``member_top1``: each member's own top-1 (input order); ``top1_by_size[n - 1]``: top-1
    of the first ``n`` of ``order`` averaged; ``best_size``; ``probs``: the best ensemble's
    averaged probabilities ``(N, K)``."""

    order: list[int]
    member_top1: list[float]
    top1_by_size: list[float]
    best_size: int
    probs: np.ndarray = field(repr=False)

    @property
    def best_top1(self) -> float:
        return self.top1_by_size[self.best_size - 1]

    @property
    def members(self) -> list[int]:
        """Indices (input order) of the members the best size keeps, best-first."""
        return self.order[: self.best_size]


def majority_vote(member_probs: list, fallback_probs) -> VoteResult:
    """Zhai's majority vote of ``member_probs`` (each ``(N, K)``); rows without a single
    most-voted class take ``fallback_probs``'s top-1."""
    stack = _stack(member_probs)
    fallback_probs = np.asarray(fallback_probs, dtype=np.float64)
    if fallback_probs.shape != stack.shape[1:]:
        raise TinyzooError(f"fallback scores have shape {fallback_probs.shape}, the members {stack.shape[1:]}")
    _num_members, num_images, num_classes = stack.shape
    votes = np.zeros((num_images, num_classes), dtype=np.float64)
    for member in stack:
        votes[np.arange(num_images), member.argmax(axis=1)] += 1
    most = votes.max(axis=1)
    tied = (votes == most[:, None]).sum(axis=1) > 1
    # half the mean probability orders classes with equal votes and never outweighs a vote
    scores = votes + stack.mean(axis=0) / 2
    fallback_top1 = fallback_probs.argmax(axis=1)
    rows = np.nonzero(tied)[0]
    scores[rows, fallback_top1[rows]] = scores[rows].max(axis=1) + 0.5
    scores /= scores.sum(axis=1, keepdims=True)
    predictions = np.where(tied, fallback_top1, votes.argmax(axis=1)).astype(np.int64)
    return VoteResult(scores=scores.astype(np.float32), predictions=predictions, used_fallback=tied)


def softmax_average(member_probs: list) -> np.ndarray:
    """The mean of the members' probabilities: ``(N, K)`` float32."""
    return _stack(member_probs).mean(axis=0).astype(np.float32)


def best_first(member_top1: list[float]) -> list[int]:
    """Member indices by their own top-1, best first; equally good members keep the order they were given in."""
    return sorted(range(len(member_top1)), key=lambda i: -member_top1[i])


def greedy_size(member_probs: list, labels) -> SizeSelection:
    """Milani's selection: sort members best-first, score every prefix, keep the best size."""
    stack = _stack(member_probs)
    labels = np.asarray(labels, dtype=np.int64)
    member_top1 = [topk_accuracy(p, labels, 1) for p in stack]
    order = best_first(member_top1)
    running = np.zeros(stack.shape[1:], dtype=np.float64)
    top1_by_size = []
    for n, index in enumerate(order, start=1):
        running += stack[index]
        top1_by_size.append(topk_accuracy(running / n, labels, 1))
    best_size = int(np.argmax(top1_by_size)) + 1  # argmax: first (smallest) size on a tie
    probs = stack[order[:best_size]].mean(axis=0).astype(np.float32)
    return SizeSelection(order, member_top1, top1_by_size, best_size, probs)


@dataclass
class Choice:
    """What an ensemble method made of its members: ``probs`` ``(N, K)``, the members it
    ``kept`` (input indices, best first when ranked), and Milani's ``selection`` (when the
    size was chosen on the split) or Zhai's ``vote`` (majority vote)."""

    probs: np.ndarray = field(repr=False)
    kept: list[int]
    selection: SizeSelection | None = None
    vote: VoteResult | None = None


def softmax_ensemble(member_probs: list, labels=None, size: int | None = None) -> Choice:
    """Milani's softmax average. With labels and no ``size``: the best size chosen on the split
    (:func:`greedy_size`). Otherwise the first ``size`` members (all when None): best-first by
    their own top-1 when there are labels, else in the order given."""
    labelled = labels is not None and bool((np.asarray(labels) >= 0).any())
    if size is None and labelled:
        selection = greedy_size(member_probs, labels)
        return Choice(selection.probs, selection.members, selection=selection)
    order = best_first([topk_accuracy(p, labels, 1) for p in member_probs]) if labelled else list(range(len(member_probs)))
    kept = order[: size or len(member_probs)]
    return Choice(softmax_average([member_probs[i] for i in kept]), kept)


def plot_size_curve(selection: SizeSelection, path, title: str = "Snapshot ensemble") -> None:
    """Write Milani's Figure 6 as a PNG: top-1 against ensemble size, the best size in red."""
    from tinyzoo.evaluate.figures import new_figure, save_figure

    sizes = np.arange(1, len(selection.top1_by_size) + 1)
    top1 = 100 * np.asarray(selection.top1_by_size)
    fig, ax = new_figure(5.0, 3.2)
    ax.plot(sizes, top1, "o-", color="#1f77b4", markersize=4, label="best-first ensemble")
    members = 100 * np.asarray([selection.member_top1[i] for i in selection.order])
    ax.plot(sizes, members, "x", color="#999999", markersize=4, label="member added (alone)")
    ax.plot([selection.best_size], [100 * selection.best_top1], "o", color="red", markersize=8,
            label=f"best: {selection.best_size} models, {100 * selection.best_top1:.2f}%")
    ax.set_xlabel("number of models in the ensemble")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.set_xticks(sizes if len(sizes) <= 20 else sizes[:: max(1, len(sizes) // 10)])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.9)
    save_figure(fig, path)


def _stack(member_probs: list) -> np.ndarray:
    if not len(member_probs):
        raise TinyzooError("an ensemble needs at least one model")
    shapes = {np.shape(p) for p in member_probs}
    if len(shapes) != 1:
        raise TinyzooError(f"ensemble members disagree on (images, classes): {sorted(shapes)}")
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in member_probs])
    if stack.ndim != 3:
        raise TinyzooError(f"ensemble members must give (images, classes) scores, got shape {stack.shape[1:]}")
    return stack
