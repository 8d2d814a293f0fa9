"""Where a run stands, and what a checkpoint carries besides the model.

:class:`RunState` is the position (stage, epoch, batch, step) and the history (metrics, learning
rates, snapshots, best score) of a run; :class:`EpochTotals` the running sums of the epoch in
progress. Both go into ``trainer.pt`` as plain data, with every process's RNG states
(:func:`gather_rng`), so a resumed run repeats the interrupted epoch exactly.

``trainer.pt`` holds tensors, numbers, strings, lists, tuples and dicts only, so that it loads
with ``torch.load(weights_only=True)``: numpy's and Python's RNG states are turned into those
(:func:`plain_rng`) and back (:func:`restore_rng`) exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

CHECKPOINT_VERSION = 2  # 2: RNG states as tensors and lists (loads with weights_only=True)


@dataclass
class EpochTotals:
    """Running sums of one epoch's training (resumable mid-epoch)."""

    loss: float = 0.0
    correct1: float = 0.0
    correct5: float = 0.0
    images: int = 0
    seconds: float = 0.0

    def add(self, other: dict) -> None:
        """Add :func:`sum_stats` output, one batch at a time."""
        for loss, correct1, correct5 in other.get("rows", ()):
            self.loss += loss
            self.correct1 += correct1
            self.correct5 += correct5
        self.images += int(other["images"])

    def sums(self) -> list[float]:
        """``[loss, correct1, correct5, images]``, as the processes add them up."""
        return [self.loss, self.correct1, self.correct5, float(self.images)]


@dataclass
class RunState:
    """Where a run stands: everything besides tensors that a checkpoint must carry."""

    stage: int = 0
    stage_epoch: int = 0  # epochs completed in the current stage
    stage_step: int = 0  # optimizer steps completed in the current stage
    position: int = 0  # micro-batches completed in the current (interrupted) epoch
    global_step: int = 0
    epochs_done: float = 0.0  # cumulative epochs over every stage, at the start of the current epoch
    adapted: list[int] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    lr_trace: list[tuple[int, float, float]] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)
    best_score: float | None = None
    partial: dict | None = None
    schedule: dict | None = None

    def stepped(self, lr: float, epoch_fraction: float) -> None:
        """Count one optimizer step at ``lr``, taken ``epoch_fraction`` of the way into the epoch."""
        self.stage_step += 1
        self.global_step += 1
        self.lr_trace.append((self.global_step, round(self.epochs_done + epoch_fraction, 6), lr))

    def epoch_ended(self, stage_epoch: int) -> None:
        """The current stage has completed ``stage_epoch`` epochs; the next starts at its first batch."""
        self.stage_epoch, self.position, self.partial = stage_epoch, 0, None

    def next_stage(self, stage: int) -> None:
        """Move to the start of stage ``stage``."""
        self.stage, self.stage_epoch, self.stage_step, self.position = stage, 0, 0, 0
        self.schedule, self.partial = None, None


def batch_stats(logits, targets, loss) -> dict:
    """Sum of loss and top-1/top-5 hits of a batch, as device tensors (no synchronisation)."""
    labels = targets if targets.dim() == 1 else targets.argmax(1)
    k = min(5, logits.shape[1])
    top = logits.detach().topk(k, dim=1).indices
    hits = top == labels[:, None]
    n = labels.shape[0]
    return {
        "loss": loss.detach().float() * n,
        "correct1": hits[:, 0].sum(),
        "correct5": hits.any(1).sum(),
        "images": n,
    }


def sum_stats(items: list[dict]) -> dict:
    """Host sums of per-batch stats (one synchronisation), added batch by batch in float64.

    Adding one batch at a time keeps the sums independent of how batches were grouped, so an
    epoch resumed mid-way reports the same figures as an uninterrupted one.
    """
    if not items:
        return {"rows": [], "images": 0}
    rows = torch.stack([torch.stack([s["loss"].float(), s["correct1"].float(), s["correct5"].float()]) for s in items]).tolist()
    return {"rows": rows, "images": sum(int(s["images"]) for s in items)}


def plain_rng() -> dict:
    """This process's RNG states as tensors, numbers and lists (what ``weights_only=True`` loads)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }


def gather_rng(world) -> list[dict]:
    """Every process's RNG states (:func:`plain_rng`), in rank order."""
    mine = plain_rng()
    if not world.distributed:
        return [mine]
    import torch.distributed as dist

    everyone: list = [None] * world.world_size
    dist.all_gather_object(everyone, mine)
    return everyone


def restore_rng(states: list[dict], rank: int) -> None:
    """Restore this process's RNG states from a checkpoint."""
    mine = states[rank] if rank < len(states) else states[0]
    torch.set_rng_state(mine["torch"])
    if mine.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(mine["cuda"])
    npy = mine["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"]))
    py = mine["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
