"""Combining the scores of several views of one image into one prediction.

Every combination takes the network's raw scores (logits) of shape ``(V, B, K)`` (V views
of B images over K classes) and returns ``(B, K)`` class probabilities: each row is
non-negative and sums to 1, and its argmax is the combined top-1. With ``s[v, k]`` the
score of view ``v`` for class ``k`` and ``p[v] = softmax(s[v])``:

- ``expsum`` (Kim): ``sum_v exp(s[v, k])``, divided by its sum over classes. Kim read
  scores as unnormalised log-probabilities and summed their exponentials; this equals a
  weighted mean of the views' softmaxes with weights ``Z_v = sum_k exp(s[v, k])``, so a
  view with large scores counts more. Computed in log space (no overflow).
- ``softmax`` (Milani): ``mean_v p[v, k]``, the average probability.
- ``logits``: ``softmax(mean_v s[v])``, the softmax of the average score.
- ``vote``: the share of views whose top-1 is ``k``. Ties between classes with the same
  number of votes go to the one with the higher ``softmax`` combination (then to the
  lower class index): the result is ``(votes[k] + p_mean[k] / 2) / (V + 1 / 2)``, where
  the half-weighted mean probability can never outweigh a whole vote.
"""

from __future__ import annotations

from tinyzoo.errors import TinyzooError

COMBINATIONS = ("expsum", "softmax", "logits", "vote")


def expsum(scores):
    """Kim's sum of ``exp(score)`` over views, normalised over classes: ``(B, K)``."""
    import torch

    scores = _check(scores)
    log_sum = torch.logsumexp(scores, dim=0)  # log sum_v exp(s), (B, K)
    return torch.softmax(log_sum, dim=-1)


def softmax(scores):
    """Milani's mean of the views' softmax probabilities: ``(B, K)``."""
    import torch

    return torch.softmax(_check(scores), dim=-1).mean(dim=0)


def logits(scores):
    """The softmax of the views' mean score: ``(B, K)``."""
    import torch

    return torch.softmax(_check(scores).mean(dim=0), dim=-1)


def vote(scores):
    """Each view's top-1 is a vote; ties broken by the mean probability (see module doc): ``(B, K)``."""
    import torch

    scores = _check(scores)
    num_views, _, num_classes = scores.shape
    top1 = scores.argmax(dim=-1)  # (V, B)
    votes = torch.nn.functional.one_hot(top1, num_classes).sum(dim=0).to(scores.dtype)
    return (votes + softmax(scores) / 2) / (num_views + 0.5)


def combine(how: str, scores):
    """Apply the combination named ``how`` (one of :data:`COMBINATIONS`) to ``(V, B, K)`` scores."""
    check_combination(how)
    return {"expsum": expsum, "softmax": softmax, "logits": logits, "vote": vote}[how](scores)


def check_combination(how: str) -> None:
    if how not in COMBINATIONS:
        raise TinyzooError(f"unknown combination {how!r}; choose one of: {', '.join(COMBINATIONS)}")


def _check(scores):
    import torch

    if scores.ndim != 3:
        raise TinyzooError(f"combining needs (views, images, classes) scores, got shape {tuple(scores.shape)}")
    # half-precision exponentials lose the small probabilities top-5 needs
    return scores.to(torch.float32) if scores.dtype in (torch.float16, torch.bfloat16) else scores
