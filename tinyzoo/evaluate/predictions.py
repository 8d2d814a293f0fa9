"""Running a model over images with test-time views: per-image class probabilities.

:func:`run_model` is the one loop: uint8 NHWC batches from a (memory-mapped) array go to
the device, become the view batch of :mod:`~tinyzoo.evaluate.views`, are normalised with
the model's own mean/std and run as one forward per batch (bf16 autocast and
channels_last on CUDA); the views' scores are combined by
:mod:`~tinyzoo.evaluate.combine`. :func:`predict_split` does that over a
``DecodedSplit`` and maps the dataset's labels onto the model's class order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.evaluate import combine as combine_module
from tinyzoo.evaluate import metrics
from tinyzoo.evaluate.views import check_view_set, make_views, resize, view_count
from tinyzoo.specs import CROP_SIZE, IMAGE_SIZE

# Tiny ImageNet trains on 56-pixel crops of 64-pixel images; a model wanting more than the
# image holds gets the image upscaled by the same ratio first (224 -> 256, as ImageNet).
CROP_RATIO = CROP_SIZE / IMAGE_SIZE
CPU_BATCH_ROWS = 256
CUDA_BATCH_ROWS = 1024


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


@dataclass(frozen=True)
class Preprocess:
    """How images become network input.

    ``crop`` is the views' size (``None``: the model config's ``input_size``). The whole
    64x64 image is normalised first, then cut into views (crops, flips and bilinear
    resizes commute with the normalisation): by ``pipeline`` when given (a
    ``tinyzoo.data.augment.Pipeline`` in eval mode at the image size, as a run's recipe
    builds it: ``dataset`` and ``pixel`` normalisation included), else by channel ``mean`` /
    ``std`` in 0..1 units (``None``: the config's, else ImageNet's). ``origin`` names where
    the settings came from.
    """

    crop: int | None = None
    mean: tuple | None = None
    std: tuple | None = None
    pipeline: Any = None
    origin: str = "config.json"

    @classmethod
    def from_config(cls, config: dict | None, crop: int | None = None) -> "Preprocess":
        """Crop and channel normalisation from an adapted model's config.json.

        A model saved by the trainer carries ``preprocess`` (its recipe's evaluation crop and
        normalisation), which wins over ``input_size``/``mean``/``std``.
        """
        config = config or {}
        recorded = config.get("preprocess") or {}
        if recorded.get("normalize") == "pixel":
            raise TinyzooError(
                f"{config.get('architecture', 'this model')} was trained with per-pixel mean normalisation, "
                "which needs its training data: evaluate it from its run directory with --data DIR"
            )
        if recorded.get("normalize") == "none":
            recorded = {**recorded, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
        mean, std = recorded.get("mean", config.get("mean")), recorded.get("std", config.get("std"))
        size = crop or recorded.get("crop") or config.get("input_size")
        origin = "config.json (the training run's preprocess)" if recorded else "config.json"
        return cls(size, tuple(mean) if mean else None, tuple(std) if std else None, origin=origin)


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

    ``preprocess`` defaults to ``Preprocess.from_config(model.tinyzoo_config)``; a crop
    larger than the images upscales them first by 64/56 (224 -> 256). ``batch_rows`` bounds
    the rows of one forward, views included (default 256 on CPU, 1024 on CUDA). The model
    is put in eval mode and moved to ``device`` (default: CUDA when available).
    """
    import torch

    from tinyzoo.console import progress

    check_view_set(views)
    combine_module.check_combination(combine)
    if preprocess is None:
        preprocess = Preprocess.from_config(getattr(model, "tinyzoo_config", None))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cuda = device.type == "cuda"
    normalise = _normaliser(preprocess, device)

    if images.ndim != 4 or images.shape[-1] != 3:
        raise TinyzooError(f"images must be an (N, H, W, 3) uint8 array, got shape {tuple(images.shape)}")
    num_images, height, width = images.shape[0], images.shape[1], images.shape[2]
    crop = int(preprocess.crop or min(height, width))
    prescale = math.ceil(crop / CROP_RATIO) if crop > min(height, width) else None
    forward = _dense_forward(model) if views == "dense" else model
    per_batch = max(1, (batch_rows or (CUDA_BATCH_ROWS if on_cuda else CPU_BATCH_ROWS)) // view_count(views))

    model.eval()
    model.to(device)
    if on_cuda:
        model.to(memory_format=torch.channels_last)
    out = None
    with torch.inference_mode(), progress(total=num_images, desc=desc, unit="img") as bar:
        for start in range(0, num_images, per_batch):
            chunk = images[start:start + per_batch]
            # a copy: the split's memory map is read-only, and torch wants writable memory
            batch = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.array(chunk))
            if on_cuda:
                batch = batch.pin_memory()
            batch = normalise(batch.to(device, non_blocking=True))
            if prescale:
                batch = resize(batch, prescale)
            rows = make_views(views, batch, crop)
            if on_cuda:
                rows = rows.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=on_cuda):
                scores = _forward(forward, rows, views)
            scores = view_scores(scores, len(chunk))
            probs = combine_module.combine(combine, scores).float().cpu().numpy()
            if out is None:
                out = np.empty((num_images, probs.shape[1]), dtype=np.float32)
            out[start:start + len(chunk)] = probs
            bar.update(len(chunk))
    if out is None:
        raise TinyzooError("no images to predict")
    return out


def _normaliser(preprocess: Preprocess, device):
    """uint8 ``(N, H, W, 3)`` on ``device`` -> normalised float ``(N, 3, H, W)``."""
    import torch

    from tinyzoo.specs import IMAGENET_MEAN, IMAGENET_STD

    if preprocess.pipeline is not None:
        return lambda batch: preprocess.pipeline(batch).contiguous()
    mean = list(preprocess.mean) if preprocess.mean is not None else list(IMAGENET_MEAN)
    std = list(preprocess.std) if preprocess.std is not None else list(IMAGENET_STD)
    if max(mean) > 1.0:  # given in 0..255 units
        mean, std = [m / 255 for m in mean], [s / 255 for s in std]
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return lambda batch: (batch.permute(0, 3, 1, 2).to(torch.float32) / 255.0 - mean_t) / std_t


def _dense_forward(model):
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
