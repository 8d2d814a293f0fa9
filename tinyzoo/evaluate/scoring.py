"""The one scoring loop: a model's view scores for batches of uint8 images.

``tinyzoo eval`` (through :func:`~tinyzoo.evaluate.predictions.run_model`) and the trainer's
validation both score here: each batch is prepared by the model's own
:class:`~tinyzoo.preprocess.Preprocess` (from its config.json), cut into views
(:mod:`~tinyzoo.evaluate.views`), and run as one forward under the scoring policy of
:mod:`tinyzoo.runtime` (bf16 autocast on CUDA, full precision on the CPU, channels_last), in
batches of the same size; probabilities and hits are counted by the same functions. So a run's
``val_top1`` is exactly what ``tinyzoo eval RUN --tta center`` reports (on CUDA, up to the
algorithms cuDNN picks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.evaluate import combine as combine_module
from tinyzoo.evaluate import metrics
from tinyzoo.evaluate.views import check_view_set, make_views, view_count

CPU_BATCH_ROWS = 256  # rows (views included) of one forward
CUDA_BATCH_ROWS = 1024


def batch_images(device, views: str = "center", batch_rows: int | None = None) -> int:
    """Images per forward: ``batch_rows`` rows (default 256 on the CPU, 1024 on CUDA) shared by the views."""
    rows = batch_rows or (CUDA_BATCH_ROWS if device.type == "cuda" else CPU_BATCH_ROWS)
    return max(1, rows // view_count(views))


def score_batches(model, batches: Iterable, on_scores: Callable[[Any, Any], None], *, views: str = "center",
                  preprocess=None, runtime=None) -> None:
    """Score every ``(images, extra)`` of ``batches`` and call ``on_scores(scores, extra)``.

    ``images`` is a uint8 ``(B, H, W, 3)`` tensor on the runtime's device; ``scores`` is the
    ``(V, B, K)`` float tensor of its views (a score map's cells count as views).
    ``preprocess`` defaults to the model's (:func:`tinyzoo.preprocess.of`), ``runtime`` to
    :meth:`~tinyzoo.runtime.Runtime.for_inference`. The model runs in eval mode and gets its
    training flags back afterwards; nothing moves it (see :meth:`Runtime.prepare`).
    """
    import torch

    from tinyzoo import preprocess as preprocessing
    from tinyzoo.runtime import Runtime

    check_view_set(views)
    preprocess = preprocess if preprocess is not None else preprocessing.of(model)
    runtime = runtime if runtime is not None else Runtime.for_inference()
    forward = dense_forward(model) if views == "dense" else model
    with evaluating(model), torch.no_grad():
        for images, extra in batches:
            on_scores(score(forward, images, views, preprocess, runtime), extra)


def score(forward, images, views: str, preprocess, runtime):
    """One batch: preprocess, views, one forward under the runtime's precision -> ``(V, B, K)`` scores."""
    batch = preprocess(images)
    crop = preprocess.crop or min(batch.shape[-2], batch.shape[-1])
    rows = runtime.inputs(make_views(views, batch, crop))
    with runtime.autocast():
        output = _forward(forward, rows, views)
    return view_scores(output, images.shape[0])


def probabilities(scores, how: str) -> np.ndarray:
    """``(V, B, K)`` scores combined by ``how`` into ``(B, K)`` float32 probabilities on the host."""
    return combine_module.combine(how, scores).float().cpu().numpy()


class Tally:
    """Loss and top-1/top-5 hits of labelled batches, counted as ``tinyzoo eval`` counts them
    (the center view's softmax, ties to the lower class index); call it as ``on_scores``."""

    def __init__(self) -> None:
        self.loss, self.hits1, self.hits5, self.images = 0.0, 0, 0, 0

    def __call__(self, scores, labels) -> None:
        import torch.nn.functional as F

        logits = scores[0].float()
        labels = labels.to(logits.device)
        self.loss += float(F.cross_entropy(logits, labels)) * int(labels.shape[0])
        probs, host_labels = probabilities(scores, "softmax"), labels.cpu().numpy()
        self.hits1 += metrics.topk_hits(probs, host_labels, 1)
        self.hits5 += metrics.topk_hits(probs, host_labels, 5)
        self.images += int(labels.shape[0])

    def sums(self) -> list[float]:
        return [self.loss, float(self.hits1), float(self.hits5), float(self.images)]


@contextlib.contextmanager
def evaluating(model):
    """``model`` in eval mode inside the block; every module's training flag restored after it."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes.items():
            module.training = mode


def dense_forward(model):
    """What the dense view calls: a convolutionized network's ``score_map`` (its forward would
    pool the map), behind the network's own input resize when it has one; else the network."""
    score_map = getattr(model, "score_map", None)
    if not callable(score_map):
        return model
    resize_input = getattr(model, "input_resize", None)  # a forward pre-hook, which score_map skips
    return (lambda x: score_map(resize_input(x))) if callable(resize_input) else score_map


def _forward(forward, rows, views: str):
    if views != "dense":
        return forward(rows)
    try:
        return forward(rows)
    except RuntimeError as exc:  # a Linear classifier fed a larger map than it was built for
        raise TinyzooError(
            f"the dense view feeds whole {rows.shape[-2]}x{rows.shape[-1]} images and this model cannot take them "
            f"({one_line(exc, 100)}); adapt it with --convolutionize, or use --tta full"
        ) from None


def view_scores(output, batch: int):
    """A forward's output over ``V * batch`` view rows -> ``(views, batch, classes)`` scores.

    A score map ``(V * batch, K, h, w)`` (a convolutionized network) counts every cell as
    one more view; a tuple (auxiliary heads) contributes its first element.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    if output.ndim == 2:
        return output.reshape(-1, batch, output.shape[-1])
    if output.ndim == 4:
        rows, classes = output.shape[0], output.shape[1]
        cells = output.reshape(rows // batch, batch, classes, -1)  # (V, B, K, h*w)
        return cells.permute(0, 3, 1, 2).reshape(-1, batch, classes)
    raise TinyzooError(f"the model returned scores of shape {tuple(output.shape)}; expected (N, K) or a (N, K, h, w) score map")
