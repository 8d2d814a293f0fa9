"""``BatchLoader``: batches gathered from the decoded split and augmented as whole tensors.

No worker processes: a batch is one numpy fancy-index of the memory-mapped uint8 array and
a handful of tensor ops, which one background thread keeps ahead of the training loop.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from tinyzoo.cpu_threads import limited
from tinyzoo.data.augment import check_mix_labels
from tinyzoo.errors import TinyzooError


def seed_for(*parts: int) -> int:
    """A 63-bit seed mixed from integers (seed, epoch, rank, batch...), stable across runs."""
    entropy = [int(p) % 2**64 for p in parts]  # SeedSequence takes non-negative integers only
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


class BatchLoader:
    """Iterates ``(images, targets)`` batches of a decoded split, for one rank.

    - order: a permutation drawn from ``(seed, epoch)`` when ``shuffle`` (the same on every
      rank), else file order; call :meth:`set_epoch` before each epoch, as with
      ``DistributedSampler``;
    - sharding: the order is padded by wrapping around (or, with ``drop_last``, cut) to a
      multiple of ``world_size``, and rank ``r`` takes every ``world_size``-th sample from
      ``r``;
    - each batch: ``split.images[idx]`` -> uint8 tensor -> ``device`` -> ``pipeline``
      with a generator seeded from ``(seed, epoch, rank, batch)``, so a batch is
      reproducible whatever came before it;
    - ``images`` is float (N, 3, S, S) from the pipeline (uint8 (N, 64, 64, 3) when
      ``pipeline`` is None); ``targets`` is int64 (N,) labels (-1 for test), or float
      (N, num_classes) class probabilities when the pipeline mixes (mixup/cutmix);
      ``F.cross_entropy(logits, targets)`` accepts both;
    - ``prefetch`` batches are prepared ahead in a background thread (0: none; default 2
      on CUDA, where it overlaps the GPU's work, and 0 on CPU, where the thread would only
      compete with the model for the same cores: 9.0x against 10.6x ImageFolder's
      throughput on an idle 2-core machine, docs/benchmarks.md).

    ``split`` is a :class:`~tinyzoo.data.cache.DecodedSplit` or anything with ``images``
    (N, H, W, 3) uint8 and ``labels`` (N,) arrays.
    """

    def __init__(
        self,
        split: Any,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        pipeline: Any = None,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        prefetch: int | None = None,
        num_classes: int | None = None,
    ):
        if batch_size < 1:
            raise TinyzooError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise TinyzooError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.split = split
        self.images = split.images
        self.labels = np.asarray(split.labels, dtype=np.int64)
        if len(self.images) != len(self.labels):
            raise TinyzooError(f"split has {len(self.images)} images but {len(self.labels)} labels")
        self.batch_size = batch_size
        self.shuffle, self.seed = shuffle, seed
        self.pipeline = pipeline
        self.device = torch.device(device)
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.prefetch = (2 if self.device.type == "cuda" else 0) if prefetch is None else prefetch
        wnids = getattr(split, "wnids", None)
        self.num_classes = num_classes or (len(wnids) if wnids else int(self.labels.max(initial=-1)) + 1)
        if getattr(pipeline, "mixes", False):
            check_mix_labels(self.labels)  # here, once: on a GPU the pipeline does not read labels back to check them
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order and augmentation seeds for the next iteration."""
        self.epoch = epoch

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (before ``drop_last`` drops a partial batch)."""
        n = len(self.labels)
        if self.drop_last:
            return n // self.world_size
        return -(-n // self.world_size)

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def indices(self) -> np.ndarray:
        """This rank's sample indices for the current epoch, in batch order."""
        n = len(self.labels)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        total = self.num_samples * self.world_size
        if total > n:
            order = np.concatenate([order, order[: total - n]])  # wrap around, as DistributedSampler
        order = order[:total][self.rank :: self.world_size]
        if self.drop_last:
            order = order[: len(self) * self.batch_size]
        return order

    def batch(self, number: int, idx: np.ndarray):
        """Batch ``number`` of the epoch, made from sample indices ``idx``."""
        if self.shuffle:
            idx = np.sort(idx)  # ascending offsets read the memmap sequentially; the batch is a set anyway
        images = torch.from_numpy(np.ascontiguousarray(self.images[idx]))
        labels = torch.from_numpy(self.labels[idx])
        if self.device.type == "cuda":
            images = images.pin_memory().to(self.device, non_blocking=True)
            labels = labels.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            images, labels = images.to(self.device), labels.to(self.device)
        if self.pipeline is None:
            return images, labels
        generator = torch.Generator().manual_seed(seed_for(self.seed, self.epoch, self.rank, number))
        # On the CPU the batch's small operations run on one thread: a second gains little and stalls under load.
        # (Not from a prefetch thread: the count is the process's, and the model may be running.)
        alone = self.device.type == "cpu" and threading.current_thread() is threading.main_thread()
        with limited() if alone else contextlib.nullcontext():
            return self.pipeline(images, generator, labels=labels, num_classes=self.num_classes)

    def __iter__(self) -> Iterator:
        order = self.indices()
        chunks = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        if self.prefetch <= 0:
            for number, idx in enumerate(chunks):
                yield self.batch(number, idx)
            return
        yield from self._prefetched(chunks)

    def _prefetched(self, chunks: list[np.ndarray]) -> Iterator:
        """Batches made by a background thread, at most ``prefetch`` ahead; errors re-raised here."""
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        done = object()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for number, idx in enumerate(chunks):
                    if stop.is_set() or not put(("batch", self.batch(number, idx))):
                        return
                put(("done", done))
            except BaseException as exc:  # handed to the consumer, which raises it
                put(("error", exc))

        thread = threading.Thread(target=produce, name="tinyzoo-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                kind, item = ready.get()
                if kind == "error":
                    raise item
                if kind == "done":
                    return
                yield item
        finally:
            stop.set()
            thread.join()
