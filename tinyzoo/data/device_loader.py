"""The GPU-resident data path: the whole uint8 split on the device, every batch made there.

Tiny ImageNet's training split is 1.2 GB of uint8 pixels (100,000 x 64 x 64 x 3): it fits on
any training GPU many times over. :class:`DeviceLoader` copies it there once; a batch is then
one gather of rows on the device and the augmentation pipeline (crops, flips, colour,
normalisation, mixup/cutmix: :mod:`tinyzoo.data.augment`), with no pixels crossing the bus.
Per batch only the pipeline's random parameters (a few numbers per image) travel, through
pinned memory without waiting, so the host queues batch ``k + 1`` while the GPU still trains
on batch ``k``.

:func:`make_loader` is what the trainer calls: a :class:`DeviceLoader` on CUDA when the split
fits in :data:`RESIDENT_FRACTION` of the free device memory, else the host
:class:`~tinyzoo.data.loader.BatchLoader`, which stays the CPU path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from tinyzoo.data.loader import BatchLoader, seed_for

RESIDENT_FRACTION = 0.5  # of the device's free memory one resident split may take
UPLOAD_ROWS = 8192  # images per host-to-device copy while uploading a split (about 100 MB)
KEEP_RESIDENT = 2  # splits kept on a device between loaders (the training and validation splits)

_resident: OrderedDict = OrderedDict()  # (id(images), device) -> (images array, labels array, images tensor, labels tensor)


class DeviceLoader(BatchLoader):
    """:class:`~tinyzoo.data.loader.BatchLoader`'s contract, with the split held on ``device``.

    The same arguments, order, shards, ``len()``, ``set_epoch``, ``indices()`` and
    ``batch(number, idx)``; each batch is the same rows (sorted, as BatchLoader reads them)
    through the same pipeline with the generator seeded from ``(seed, epoch, rank, batch)``, so
    on one device it gives BatchLoader's batches exactly, and resuming mid-epoch stays exact.
    ``prefetch`` is ignored: the host only queues work, which the device runs in order.
    """

    def __init__(self, split: Any, batch_size: int, **kwargs):
        kwargs["prefetch"] = 0
        super().__init__(split, batch_size, **kwargs)
        self.device_images, self.device_labels = resident_split(split, self.device)

    def batch(self, number: int, idx: np.ndarray):
        """Batch ``number`` of the epoch, made from sample indices ``idx`` (host integers)."""
        if self.shuffle:
            idx = np.sort(idx)
        return self._make(number, to_device(torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)), self.device))

    def _make(self, number: int, rows: torch.Tensor):
        images = self.device_images.index_select(0, rows)
        labels = self.device_labels.index_select(0, rows)
        if self.pipeline is None:
            return images, labels
        generator = torch.Generator().manual_seed(seed_for(self.seed, self.epoch, self.rank, number))
        return self.pipeline(images, generator, labels=labels, num_classes=self.num_classes)

    def __iter__(self) -> Iterator:
        order = self.indices()
        bounds = list(range(0, len(order), self.batch_size)) + [len(order)]
        if self.shuffle:  # each batch's rows ascending, as BatchLoader reads them
            order = np.concatenate([np.sort(order[a:b]) for a, b in zip(bounds, bounds[1:])] or [order])
        rows = to_device(torch.from_numpy(np.ascontiguousarray(order, dtype=np.int64)), self.device)  # one copy per epoch
        for number, (a, b) in enumerate(zip(bounds, bounds[1:])):
            yield self._make(number, rows[a:b])


def make_loader(split: Any, batch_size: int, *, device: str | torch.device = "cpu", resident: bool | None = None, **kwargs) -> BatchLoader:
    """The loader for ``device``: :class:`DeviceLoader` when ``resident``, else :class:`BatchLoader`.

    ``resident=None`` (the default) chooses: on CUDA, resident when the split's pixels fit in
    :data:`RESIDENT_FRACTION` of the free device memory (or are there already); on the CPU,
    never (the host loader already reads the memory-mapped cache without copying it).
    Other arguments are BatchLoader's.
    """
    device = torch.device(device)
    if resident is None:
        resident = device.type == "cuda" and (is_resident(split, device) or fits(split.images.nbytes, free_memory(device)))
    return (DeviceLoader if resident else BatchLoader)(split, batch_size, device=device, **kwargs)


def fits(nbytes: int, free_bytes: int) -> bool:
    """Whether a split of ``nbytes`` may live on a device with ``free_bytes`` free."""
    return nbytes <= RESIDENT_FRACTION * free_bytes


def free_memory(device: torch.device) -> int:
    """Free bytes on a CUDA ``device``."""
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def to_device(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``: through pinned memory without blocking on CUDA."""
    if device.type == "cpu":
        return values
    if device.type == "cuda":
        return values.pin_memory().to(device, non_blocking=True)
    return values.to(device)


def is_resident(split: Any, device: torch.device) -> bool:
    hit = _resident.get((id(split.images), str(device)))
    return hit is not None and hit[0] is split.images


def resident_split(split: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of ``split`` on ``device``: uploaded once, reused by later loaders.

    The last :data:`KEEP_RESIDENT` splits stay on their device, so every stage of a run and
    its validation share one copy; :func:`release` frees them.
    """
    key = (id(split.images), str(device))
    hit = _resident.get(key)
    if hit is not None and hit[0] is split.images and hit[1] is split.labels:
        _resident.move_to_end(key)
        return hit[2], hit[3]
    _resident.pop(key, None)
    while len(_resident) >= KEEP_RESIDENT:
        _resident.popitem(last=False)
    images = upload(split.images, device)
    labels = torch.from_numpy(np.array(split.labels, dtype=np.int64)).to(device)
    _resident[key] = (split.images, split.labels, images, labels)
    return images, labels


def upload(array: Any, device: torch.device) -> torch.Tensor:
    """A uint8 (N, H, W, 3) array (memory-mapped or not) copied to ``device`` in chunks of :data:`UPLOAD_ROWS`."""
    out = torch.empty(tuple(array.shape), dtype=torch.uint8, device=device)
    for start in range(0, len(array), UPLOAD_ROWS):
        part = torch.from_numpy(np.array(array[start:start + UPLOAD_ROWS], dtype=np.uint8))
        out[start:start + len(part)].copy_(part)
    return out


def release() -> None:
    """Forget every resident split (their device memory is freed once no loader holds them)."""
    _resident.clear()
