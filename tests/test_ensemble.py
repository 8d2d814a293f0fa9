"""Ensembles: Zhai's majority vote with a fallback, Milani's softmax average and size choice."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate import ensemble


def one_hot(classes, num_classes: int = 4, confidence: float = 0.7) -> np.ndarray:
    """Probabilities with ``confidence`` on each row's class and the rest spread evenly."""
    rest = (1 - confidence) / (num_classes - 1)
    probs = np.full((len(classes), num_classes), rest)
    probs[np.arange(len(classes)), classes] = confidence
    return probs


def test_majority_wins_and_ties_use_the_fallback():
    members = [one_hot([0, 0, 1, 2]), one_hot([0, 1, 2, 2]), one_hot([1, 2, 3, 3]), one_hot([0, 3, 0, 3])]
    # row 0: 3 votes for 0 -> 0; row 1: 0,1,2,3 all different -> fallback;
    # row 2: 1,2,3,0 -> fallback; row 3: 2,2,3,3 tie -> fallback
    fallback = one_hot([3, 1, 0, 1])
    result = ensemble.majority_vote(members, fallback)
    np.testing.assert_array_equal(result.predictions, [0, 1, 0, 1])
    np.testing.assert_array_equal(result.used_fallback, [False, True, True, True])
    np.testing.assert_array_equal(result.scores.argmax(axis=1), result.predictions)
    np.testing.assert_allclose(result.scores.sum(axis=1), 1, rtol=1e-6)


def test_vote_of_three_with_two_agreeing_ignores_the_fallback():
    members = [one_hot([2]), one_hot([2]), one_hot([1])]
    result = ensemble.majority_vote(members, one_hot([1]))
    assert result.predictions.tolist() == [2] and not result.used_fallback[0]


def test_softmax_average_is_the_mean():
    a, b = one_hot([0, 1], confidence=0.9), one_hot([1, 1], confidence=0.5)
    np.testing.assert_allclose(ensemble.softmax_average([a, b]), (a + b) / 2, rtol=1e-6)


def crafted_members():
    """Three members over 6 images, labels 0..5 (6 classes): A 4/6, B 3/6, C 3/6 right.

    Best-first that is A, C (equal to B, given first), B: A alone 4/6; C, confidently wrong
    on images 2-4, pulls A+C down to 3/6; A+C+B stays at 3/6. The best size is 1.
    """
    labels = np.arange(6)

    def member(correct, wrong_to, confidence):
        classes = [labels[i] if i in correct else wrong_to[i] for i in range(6)]
        return one_hot(classes, 6, confidence)

    a = member({0, 1, 2, 3}, {4: 0, 5: 0}, 0.6)
    b = member({3, 4, 5}, {0: 1, 1: 2, 2: 3}, 0.55)
    c = member({0, 1, 5}, {2: 5, 3: 5, 4: 5}, 0.99)
    return [c, b, a], labels  # given worst-first on purpose


def test_greedy_selection_sorts_best_first_and_picks_the_best_size():
    members, labels = crafted_members()
    selection = ensemble.greedy_size(members, labels)
    assert selection.member_top1 == pytest.approx([0.5, 0.5, 4 / 6])
    assert selection.order == [2, 0, 1]  # A first; B and C tie at 3/6 and keep their input order
    assert selection.top1_by_size == pytest.approx([4 / 6, 3 / 6, 3 / 6])
    assert selection.best_size == 1 and selection.best_top1 == pytest.approx(4 / 6)
    np.testing.assert_allclose(selection.probs, np.mean([members[i] for i in selection.members], axis=0), rtol=1e-6)


def test_greedy_selection_keeps_the_smallest_size_on_a_tie():
    labels = np.array([0, 1])
    same = one_hot([0, 1], 2, 0.9)
    selection = ensemble.greedy_size([same, same, same], labels)
    assert selection.top1_by_size == [1.0, 1.0, 1.0] and selection.best_size == 1


def test_greedy_selection_picks_two_of_three():
    labels = np.array([0, 0, 0, 0])
    a = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])  # 3/4
    b = np.array([[0.6, 0.4], [0.6, 0.4], [0.4, 0.6], [0.8, 0.2]])  # 3/4: fixes a's mistake
    c = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # 0/4, confidently wrong
    selection = ensemble.greedy_size([c, a, b], labels)
    assert selection.order == [1, 2, 0]
    assert selection.top1_by_size == [0.75, 1.0, 0.5]
    assert selection.best_size == 2 and selection.members == [1, 2]


def test_size_curve_png(tmp_path):
    members, labels = crafted_members()
    selection = ensemble.greedy_size(members, labels)
    path = tmp_path / "size.png"
    ensemble.plot_size_curve(selection, path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (500, 320)


def test_members_must_agree_on_shape():
    with pytest.raises(TinyzooError, match="disagree"):
        ensemble.softmax_average([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(TinyzooError, match="at least one"):
        ensemble.softmax_average([])
