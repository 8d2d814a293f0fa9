"""The run directory: everything a training run leaves behind, written so a crash never corrupts it.

Layout::

    RUN/recipe.toml           the resolved recipe (what ran, every default filled)
    RUN/run.json              the settings it started with (data, cache, device, threads): what --resume reuses
    RUN/metrics.jsonl         one JSON object per epoch (losses, top-1/top-5, lr, time, images/s)
    RUN/lr.csv                the learning rate at every optimizer step: step,epoch,lr
    RUN/checkpoints/LATEST    name of the newest complete checkpoint
    RUN/checkpoints/<name>/   an adapted-model directory + trainer.pt (optimizer, schedule, RNG, ...)
    RUN/snapshots/            the best k models by validation accuracy + index.json
    RUN/best/                 the best model so far: an adapted-model directory (tinyzoo.load)
    RUN/curves.png, RUN/lr.png

Every file and directory is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from tinyzoo.atomic_files import (
    append_durable,
    atomic_path,
    staged_dir,
    sweep_temporaries,
    write_atomic,
)
from tinyzoo.errors import TinyzooError

KEEP_CHECKPOINTS = 2  # the newest and the one before it, in case the newest is being replaced


def save_model_dir(model, path: Path) -> None:
    """Write ``model`` as an adapted-model directory at ``path``, replacing it whole (temp dir + rename)."""
    from tinyzoo.adapt import save

    with staged_dir(path) as staging:
        save(model, staging)


class RunDir:
    """A run directory (see the module docstring); only the main process writes to it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.snapshots = self.path / "snapshots"
        self.best = self.path / "best"
        self.metrics_path = self.path / "metrics.jsonl"
        self.recipe_path = self.path / "recipe.toml"

    # -- creation and the recipe ---------------------------------------------------------
    def create(self, recipe_toml: str, *, overwrite: bool = False) -> None:
        """Make a fresh run directory holding ``recipe_toml``; refuses one that already has a run."""
        if self.recipe_path.exists() and not overwrite:
            raise TinyzooError(f"{self.path} already holds a run; use --resume {self.path} to continue it, or another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        write_atomic(self.recipe_path, recipe_toml)
        write_atomic(self.metrics_path, "")

    def write_settings(self, record: dict[str, Any]) -> None:
        """run.json: the settings the run started with (what ``--resume`` and ``tinyzoo eval`` reuse)."""
        write_atomic(self.path / "run.json", json.dumps(record, indent=2) + "\n")

    # -- metrics -------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one epoch's record to metrics.jsonl."""
        append_durable(self.metrics_path, json.dumps(record, sort_keys=False) + "\n")

    def rewrite_metrics(self, records: list[dict[str, Any]]) -> None:
        """Replace metrics.jsonl with ``records`` (on resume: what the checkpoint had seen)."""
        write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

    def write_lr_trace(self, trace: list[tuple[int, float, float]]) -> None:
        """lr.csv: ``step,epoch,lr`` per optimizer step."""
        lines = ["step,epoch,lr"] + [f"{s},{e:.6f},{lr:.10g}" for s, e, lr in trace]
        write_atomic(self.path / "lr.csv", "\n".join(lines) + "\n")

    # -- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, name: str, model, state: dict[str, Any]) -> Path:
        """Write checkpoint ``name`` (model directory + ``trainer.pt``), then point LATEST at it.

        A crash at any moment leaves LATEST naming a complete checkpoint (or none yet).
        """
        import torch

        self.checkpoints.mkdir(parents=True, exist_ok=True)
        final = self.checkpoints / name
        from tinyzoo.adapt import save

        with staged_dir(final) as staging:
            save(model, staging)
            with open(staging / "trainer.pt", "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
        write_atomic(self.checkpoints / "LATEST", name + "\n")
        self._prune_checkpoints(keep=name)
        return final

    def _prune_checkpoints(self, keep: str) -> None:
        done = sorted((p for p in self.checkpoints.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
        for old in [p for p in done if p.name != keep][: max(0, len(done) - KEEP_CHECKPOINTS)]:
            shutil.rmtree(old, ignore_errors=True)
        sweep_temporaries(self.checkpoints)

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint LATEST names, or (should it be gone) the newest complete one; None if there is none."""
        pointer = self.checkpoints / "LATEST"
        if pointer.is_file():
            path = self.checkpoints / pointer.read_text().strip()
            if (path / "trainer.pt").is_file():
                return path
        if not self.checkpoints.is_dir():
            return None
        # Names sort in training order: s00-e0003 < s00-e0003-b000120 < s00-e0004.
        complete = sorted(p for p in self.checkpoints.iterdir() if not p.name.startswith(".") and (p / "trainer.pt").is_file())
        return complete[-1] if complete else None

    @staticmethod
    def load_checkpoint(path: Path, device="cpu"):
        """``(model, state)`` from a checkpoint directory: the model via ``tinyzoo.adapt.load``."""
        import torch

        from tinyzoo.adapt import load

        model = load(path)
        state = torch.load(path / "trainer.pt", map_location=device, weights_only=False)
        return model, state

    # -- snapshots and best ---------------------------------------------------------------
    def save_best(self, model) -> None:
        """Write ``model`` to best/ (an adapted-model directory)."""
        save_model_dir(model, self.best)

    def add_snapshot(self, model, score: float, tag: str, keep: int, index: list[dict]) -> list[dict]:
        """Keep the best ``keep`` models by ``score`` in snapshots/ (Milani keeps 20).

        ``index`` is the snapshot list so far (``{"name", "score"}``, best first); returns the
        new list, also written to snapshots/index.json.
        """
        if keep <= 0 or (len(index) >= keep and score <= index[-1]["score"]):
            return index
        self.snapshots.mkdir(exist_ok=True)
        name = f"{tag}-acc{score:.4f}"
        save_model_dir(model, self.snapshots / name)
        index = sorted(index + [{"name": name, "score": score}], key=lambda r: -r["score"])
        for dropped in index[keep:]:
            shutil.rmtree(self.snapshots / dropped["name"], ignore_errors=True)
        index = index[:keep]
        write_atomic(self.snapshots / "index.json", json.dumps(index, indent=2) + "\n")
        return index

    def restore_snapshots(self, index: list[dict]) -> None:
        """Drop snapshot directories that a checkpoint's ``index`` does not list (written after it)."""
        if not self.snapshots.is_dir():
            return
        names = {r["name"] for r in index}
        for path in self.snapshots.iterdir():
            if path.is_dir() and path.name not in names:
                shutil.rmtree(path, ignore_errors=True)
        write_atomic(self.snapshots / "index.json", json.dumps(index, indent=2) + "\n")

    # -- plots ---------------------------------------------------------------------------
    def plot(self, records: list[dict[str, Any]], trace: list[tuple[int, float, float]]) -> None:
        """curves.png (loss and top-1 per epoch, train and validation) and lr.png (lr per step)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if records:
            epochs = [r["epoch"] for r in records]
            fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
            train_loss = [r["train_loss"] for r in records]
            ax_loss.plot(epochs, train_loss, color="C0", label="train")
            ax_acc.plot(epochs, [100 * r["train_top1"] for r in records], color="C0", label="train top-1")
            val = [(r["epoch"], r.get("val_loss"), r.get("val_top1")) for r in records if r.get("val_top1") is not None]
            if val:
                ax_loss.plot([v[0] for v in val], [v[1] for v in val], color="C1", label="validation")
                ax_acc.plot([v[0] for v in val], [100 * v[2] for v in val], color="C1", label="validation top-1")
            losses = [x for x in train_loss + [v[1] for v in val] if x is not None and x > 0]
            if losses and max(losses) / min(losses) > 20:
                ax_loss.set_yscale("log")
            for stage_start in {r["epoch"] - r["stage_epoch"] for r in records if r.get("stage_epoch") is not None} - {0}:
                for ax in (ax_loss, ax_acc):
                    ax.axvline(stage_start, color="0.8", linewidth=0.8, zorder=0)
            ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
            ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="top-1 accuracy")
            for ax in (ax_loss, ax_acc):
                ax.grid(alpha=0.3)
                ax.legend()
            self._save_figure(fig, self.path / "curves.png")
            plt.close(fig)
        if trace:
            fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
            ax.plot([t[1] for t in trace], [t[2] for t in trace])
            lrs = [t[2] for t in trace if t[2] > 0]
            if lrs and max(lrs) / min(lrs) > 50:
                ax.set_yscale("log")
            ax.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
            ax.grid(alpha=0.3)
            self._save_figure(fig, self.path / "lr.png")
            plt.close(fig)

    @staticmethod
    def _save_figure(fig, path: Path) -> None:
        with atomic_path(path, ".png") as tmp:
            fig.savefig(tmp, dpi=100)


def default_run_dir(name: str) -> Path:
    """``runs/NAME``, or ``runs/NAME-2``, ``-3``... when taken."""
    base = Path("runs") / Path(name).stem
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def checkpoint_name(stage: int, epoch: int) -> str:
    """``s01-e0003``: the checkpoint written after ``epoch`` epochs of stage ``stage`` (0-based)."""
    return f"s{stage:02d}-e{epoch:04d}"


def finite_or_none(value: float | None) -> float | None:
    """``value`` unless NaN or infinite (JSON has neither)."""
    return value if value is not None and math.isfinite(value) else None


def read_settings(run: Path) -> dict:
    """The settings a run was started with (run.json), for ``--resume`` and for
    ``tinyzoo eval`` of a run (its ``data``)."""
    path = Path(run) / "run.json"
    if not path.is_file():
        raise TinyzooError(f"{run}: not a run directory (no run.json); give the directory a `tinyzoo train --out` wrote")
    return json.loads(path.read_text())
