"""Combining view scores, and the accuracy metrics, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate import combine, metrics

# two views of one image over three classes
SCORES = torch.tensor([[[1.0, 2.0, 3.0]], [[3.0, 0.0, 0.0]]], dtype=torch.float64)


def test_expsum_is_the_normalised_sum_of_exponentials():
    e = math.exp
    sums = [e(1) + e(3), e(2) + e(0), e(3) + e(0)]
    expected = [s / sum(sums) for s in sums]
    assert torch.allclose(combine.expsum(SCORES)[0], torch.tensor(expected, dtype=torch.float64))


def test_softmax_is_the_mean_probability():
    e = math.exp
    p1 = [e(1) / (e(1) + e(2) + e(3)), e(2) / (e(1) + e(2) + e(3)), e(3) / (e(1) + e(2) + e(3))]
    p2 = [e(3) / (e(3) + 2), 1 / (e(3) + 2), 1 / (e(3) + 2)]
    expected = [(a + b) / 2 for a, b in zip(p1, p2)]
    assert torch.allclose(combine.softmax(SCORES)[0], torch.tensor(expected, dtype=torch.float64))


def test_expsum_and_softmax_can_disagree_on_the_winner():
    # view 1 is confident in absolute score, view 2 relatively: exp-sum follows view 1
    scores = torch.tensor([[[10.0, 9.0]], [[0.0, 3.0]]])
    assert combine.expsum(scores).argmax().item() == 0
    assert combine.softmax(scores).argmax().item() == 1


def test_logits_is_the_softmax_of_the_mean_score():
    expected = torch.softmax(torch.tensor([2.0, 1.0, 1.5], dtype=torch.float64), dim=0)
    assert torch.allclose(combine.logits(SCORES)[0], expected)


def test_expsum_does_not_overflow():
    scores = torch.tensor([[[1000.0, 999.0]], [[1000.0, 0.0]]])
    out = combine.expsum(scores)
    assert torch.isfinite(out).all()
    assert out[0, 0] > out[0, 1]


def test_vote_counts_top1_and_breaks_ties_by_mean_probability():
    # views' top-1: class 0, class 1, class 1, class 0 -> 2 votes each; class 1's mean probability is higher
    scores = torch.tensor([[[2.0, 1.9, 0.0]], [[0.0, 9.0, 0.0]], [[0.0, 5.0, 0.0]], [[0.6, 0.5, 0.0]]])
    out = combine.vote(scores)[0]
    assert out.argmax().item() == 1
    assert torch.isclose(out.sum(), torch.tensor(1.0))
    # a clear majority is never overturned by probabilities
    scores = torch.tensor([[[1.0, 0.0]], [[1.0, 0.9]], [[0.0, 50.0]]])
    assert combine.vote(scores)[0].argmax().item() == 0


def test_every_combination_gives_probabilities_and_half_precision_is_widened():
    scores = torch.randn(12, 4, 7, dtype=torch.bfloat16)
    for how in combine.COMBINATIONS:
        out = combine.combine(how, scores)
        assert out.shape == (4, 7) and out.dtype == torch.float32
        assert torch.allclose(out.sum(-1), torch.ones(4), atol=1e-5)
    with pytest.raises(TinyzooError, match="unknown combination 'max'"):
        combine.combine("max", scores)


def test_topk_per_class_and_confusion():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4]])
    labels = np.array([0, 1, 1, 1, -1])  # the last row is unlabelled and never counts
    assert metrics.topk_accuracy(probs, labels, 1) == 0.5
    assert metrics.topk_accuracy(probs, labels, 2) == 1.0
    predictions = metrics.top1_predictions(probs)
    np.testing.assert_array_equal(metrics.per_class_accuracy(predictions, labels, 3), [1.0, 1 / 3, np.nan])
    cm = metrics.confusion_matrix(predictions, labels, 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 1, 1], [0, 0, 0]])
    summary = metrics.summary(probs, labels, ["a", "b", "c"])
    assert summary["images"] == 4 and summary["per_class"] == {"a": 1.0, "b": pytest.approx(1 / 3)}
    with pytest.raises(TinyzooError, match="no labelled images"):
        metrics.topk_accuracy(probs, np.full(5, -1), 1)
