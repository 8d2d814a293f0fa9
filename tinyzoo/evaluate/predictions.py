"""Running a model over images with test-time views: per-image class probabilities.

:func:`run_model` feeds uint8 NHWC batches from a (memory-mapped) array to the one scoring
loop (:mod:`~tinyzoo.evaluate.scoring`: the model's own preprocessing, the views, one forward
per batch) and combines the views' scores with :mod:`~tinyzoo.evaluate.combine`.
:func:`predict_split` does that over a ``DecodedSplit`` and maps the dataset's labels onto
the model's class order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate import combine as combine_module
from tinyzoo.evaluate import metrics, scoring
from tinyzoo.evaluate.views import check_view_set
from tinyzoo.preprocess import Preprocess


@dataclass
class Predictions:
    """One model's (or ensemble's) combined view probabilities over a set of images.

    ``probs`` ``(N, K)`` float32 in the model's class order, ``labels`` ``(N,)`` in that
    same order (``-1`` where unknown, as for the test split), ``files`` the image paths,
    ``class_wnids``/``class_names`` the model's K classes, ``views``/``combine`` how the
    probabilities were made, ``source`` what produced them.
    """

    probs: np.ndarray
    labels: np.ndarray
    files: list[str]
    class_wnids: list[str]
    class_names: list[str]
    views: str = "center"
    combine: str = "softmax"
    source: str = ""

    @property
    def predictions(self) -> np.ndarray:
        """Top-1 class index of every image: ``(N,)``."""
        return metrics.top1_predictions(self.probs)

    @property
    def labelled(self) -> bool:
        return bool((self.labels >= 0).any())

    def summary(self) -> dict:
        """``metrics.summary`` with per-class accuracy keyed by wnid."""
        return metrics.summary(self.probs, self.labels, self.class_wnids)


def run_model(
    model,
    images,
    *,
    views: str = "center",
    combine: str = "softmax",
    preprocess: Preprocess | None = None,
    batch_rows: int | None = None,
    device=None,
    desc: str = "predicting",
) -> np.ndarray:
    """Class probabilities ``(N, K)`` float32 for ``images`` (uint8 ``(N, H, W, 3)``, numpy or
    torch), each image seen through ``views`` and combined by ``combine``.

    ``preprocess`` defaults to the model's own (config.json's ``preprocess``, see
    :mod:`tinyzoo.preprocess`). ``batch_rows`` bounds the rows of one forward, views included
    (default 256 on CPU, 1024 on CUDA). The model is moved to ``device`` (default: CUDA when
    available) and scored by :func:`tinyzoo.evaluate.scoring.score_batches`.
    """
    from tinyzoo.console import progress
    from tinyzoo.runtime import Runtime

    check_view_set(views)
    combine_module.check_combination(combine)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise TinyzooError(f"images must be an (N, H, W, 3) uint8 array, got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise TinyzooError("no images to predict")
    runtime = Runtime.for_inference(device)
    runtime.prepare(model)
    per_batch = scoring.batch_images(runtime.device, views, batch_rows)
    out: list = []
    with progress(total=images.shape[0], desc=desc, unit="img") as bar:

        def keep(scores, count: int) -> None:
            out.append(scoring.probabilities(scores, combine))
            bar.update(count)

        scoring.score_batches(model, array_batches(images, per_batch, runtime.device), keep, views=views,
                              preprocess=preprocess, runtime=runtime)
    return np.concatenate(out)


def array_batches(images, per_batch: int, device):
    """``(uint8 tensor on device, count)`` for each run of ``per_batch`` rows of a numpy or torch array."""
    import torch

    for start in range(0, images.shape[0], per_batch):
        chunk = images[start:start + per_batch]
        # a copy: the split's memory map is read-only, and torch wants writable memory
        batch = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.array(chunk))
        if device.type == "cuda":
            batch = batch.pin_memory()
        yield batch.to(device, non_blocking=True), len(chunk)


def predict_split(
    model,
    split,
    *,
    views: str = "center",
    combine: str = "softmax",
    preprocess: Preprocess | None = None,
    limit: int | None = None,
    batch_rows: int | None = None,
    device=None,
    source: str = "",
) -> Predictions:
    """Run ``model`` over a ``DecodedSplit`` (``.images``, ``.labels``, ``.files``,
    ``.wnids``) and return :class:`Predictions` with labels in the model's class order.
    ``preprocess`` as :func:`run_model`; ``limit`` keeps the first N images."""
    class_wnids, class_names = model_classes(model, dataset_wnids=list(split.wnids), dataset_names=dict(getattr(split, "names", None) or {}))
    images = split.images if limit is None else split.images[:limit]
    labels = np.asarray(split.labels if limit is None else split.labels[:limit], dtype=np.int64)
    labels = map_labels(labels, list(split.wnids), class_wnids)
    probs = run_model(model, images, views=views, combine=combine, preprocess=preprocess, batch_rows=batch_rows,
                      device=device, desc=f"{views}/{combine}")
    if probs.shape[1] != len(class_wnids):
        raise TinyzooError(f"the model gives {probs.shape[1]} class scores but its config lists {len(class_wnids)} wnids")
    files = [str(f) for f in (split.files if limit is None else split.files[:limit])]
    return Predictions(probs, labels, files, class_wnids, class_names, views, combine, source)


def model_classes(model, *, dataset_wnids: list[str] | None = None, dataset_names: dict | None = None) -> tuple[list[str], list[str]]:
    """``(wnids, names)`` of the model's output classes from ``model.tinyzoo_config``. A model
    without wnids is taken to use ``dataset_wnids``' order; a class the config names only by
    its wnid takes its words from ``dataset_names`` (wnid -> words.txt names) when given."""
    config = getattr(model, "tinyzoo_config", None) or {}
    wnids = list(config.get("wnids") or [])
    if not wnids:
        if dataset_wnids is None:
            raise TinyzooError("the model's config.json lists no wnids, so its class names are unknown")
        wnids = list(dataset_wnids)
    names = config.get("names")
    if isinstance(names, dict):
        names = [names.get(w, w) for w in wnids]
    elif not names or len(names) != len(wnids):
        names = list(wnids)
    dataset_names = dataset_names or {}
    names = [str(n) if n and n != w else str(dataset_names.get(w, w)) for w, n in zip(wnids, names)]
    return wnids, names


def map_labels(labels: np.ndarray, dataset_wnids: list[str], class_wnids: list[str]) -> np.ndarray:
    """Dataset labels (indices into ``dataset_wnids``) -> indices into ``class_wnids``;
    ``-1`` stays ``-1``. A labelled class the model lacks is an error."""
    if list(dataset_wnids) == list(class_wnids):
        return labels
    index = {w: i for i, w in enumerate(class_wnids)}
    table = np.full(len(dataset_wnids) + 1, -1, dtype=np.int64)  # last slot: label -1
    present = set(labels[labels >= 0].tolist())
    for i, wnid in enumerate(dataset_wnids):
        if wnid in index:
            table[i] = index[wnid]
        elif i in present:
            raise TinyzooError(f"dataset class {wnid} is not one of the model's {len(class_wnids)} classes (its config.json wnids)")
    return table[labels]
