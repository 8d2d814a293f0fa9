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

Every file and directory is written under a temporary name and renamed into place; the first
files (recipe.toml, run.json, metrics.jsonl, checkpoints/) appear together, by renaming the
folder that holds them, so a folder with ``run.json`` is a run that ``--resume`` continues and
any other state leaves nothing in the way of starting it again. Temporaries a killed process
left are swept when the run starts or resumes. Nothing is deleted or replaced but what a run
writes: checkpoint and snapshot folders by their names, and in them only tinyzoo's files.

``trainer.pt`` holds tensors and plain data only and is read with ``weights_only=True``: a
file that would need more (code to run) is refused, and one that cannot be read (truncated,
damaged) is passed over for the checkpoint before it.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

from tinyzoo.atomic_files import (
    append_durable,
    atomic_path,
    discard_dir,
    staged_dir,
    sweep_temporaries,
    write_atomic,
)
from tinyzoo.errors import TinyzooError, one_line

KEEP_CHECKPOINTS = 2  # the newest and the one before it, in case the newest is being replaced or is damaged
RUN_MARKER = "run.json"  # what makes a folder a run directory (written in the same rename as the other first files)
TRAINER_FILE = "trainer.pt"
CHECKPOINT_NAME = re.compile(r"s\d{2}-e\d{4}(-b\d{6})?")
SNAPSHOT_NAME = re.compile(r"s\d{2}-e\d{4}(-b\d{6})?-acc\d+\.\d{4}")
SHOWN_ENTRIES = 3


class DamagedCheckpoint(TinyzooError):
    """A checkpoint whose files cannot be read (truncated, damaged): the one before it is used."""


class UnsafeCheckpoint(TinyzooError):
    """A ``trainer.pt`` holding objects that loading would have to run code for: refused."""


def model_file_names() -> set[str]:
    """The files :func:`tinyzoo.save` writes into an adapted-model directory."""
    from tinyzoo.model_files import MODEL_FILES
    from tinyzoo.preprocess import PIXEL_MEAN_FILE

    return {*MODEL_FILES, PIXEL_MEAN_FILE}


def save_model_dir(model, path: Path) -> None:
    """Write ``model`` as an adapted-model directory at ``path``, replacing it whole (temp dir + rename).

    Should the folder hold files tinyzoo did not write, only the model's own files are
    replaced (each by a rename), and the others are left where they are.
    """
    from tinyzoo.adapt import save

    if path.is_dir() and any(p.name not in model_file_names() for p in path.iterdir()):
        save(model, path)
        return
    with staged_dir(path) as staging:
        save(model, staging)


def discard_own_dir(path: Path, own: set[str]) -> None:
    """Delete folder ``path`` that tinyzoo wrote; should it hold files tinyzoo did not write
    (names outside ``own``), delete only tinyzoo's files and leave the folder with the rest."""
    if not path.is_dir():
        return
    if all(p.name in own for p in path.iterdir()):
        discard_dir(path)
        return
    for p in path.iterdir():
        if p.name in own and p.is_file():
            p.unlink()


def read_trainer_state(path: Path, device="cpu") -> dict:
    """``trainer.pt``, read with ``weights_only=True``: :class:`UnsafeCheckpoint` when it holds
    objects that unpickling would run code for, :class:`DamagedCheckpoint` when it cannot be read.

    A pickle stream the restricted unpickler refuses is unsafe even when it may only be garbage:
    tinyzoo refuses rather than guesses (a truncated or zeroed file fails earlier, as damaged)."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols it was not written with
            state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower():
            raise DamagedCheckpoint(f"{path} cannot be read ({one_line(exc, 100, typed=True)})") from None
        from tinyzoo.weights import refusal_reason

        raise UnsafeCheckpoint(
            f"refused {path}: it holds more than tensors and plain data, and loading it could run code ({refusal_reason(exc)}); "
            "tinyzoo's checkpoints never do (one written before checkpoint format 2 cannot be resumed: start the run again)"
        ) from None
    except FileNotFoundError:
        raise DamagedCheckpoint(f"{path} is missing") from None
    except Exception as exc:
        raise DamagedCheckpoint(f"{path} cannot be read ({one_line(exc, 100, typed=True)})") from None
    if not isinstance(state, dict):
        raise DamagedCheckpoint(f"{path} holds {type(state).__name__}, not a checkpoint's table")
    return state


class RunDir:
    """A run directory (see the module docstring); only the main process writes to it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.snapshots = self.path / "snapshots"
        self.best = self.path / "best"
        self.metrics_path = self.path / "metrics.jsonl"
        self.recipe_path = self.path / "recipe.toml"

    # -- creation ------------------------------------------------------------------------
    def check_new(self) -> None:
        """Raise unless a new run may be made here: the folder is absent, empty, or holds only
        the first files of a run that never started (:meth:`never_started`).

        A run directory is never started over (``--resume`` continues it) and a folder
        holding anything else is not tinyzoo's to write into.
        """
        path = self.path
        if path.exists() and not path.is_dir():
            raise TinyzooError(f"--out {path} is a file, not a folder; give a new folder for the run")
        if (path / RUN_MARKER).is_file():
            raise TinyzooError(f"{path} already holds a run; use --resume {path} to continue it, or another --out")
        entries = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        if entries and not self.never_started():
            more = f" and {len(entries) - SHOWN_ENTRIES} more" if len(entries) > SHOWN_ENTRIES else ""
            raise TinyzooError(
                f"--out {path} holds files that are not a tinyzoo run ({', '.join(entries[:SHOWN_ENTRIES])}{more}); "
                "tinyzoo writes runs into a new or empty folder only: give another --out"
            )

    def never_started(self) -> bool:
        """Whether the folder holds only the first files of a run that an earlier tinyzoo (which
        wrote them one by one) left before ``run.json``: ``recipe.toml``, an empty metrics.jsonl
        and an empty checkpoints/. Such a folder is started over."""
        entries = {p.name for p in self.path.iterdir()}
        if not entries <= {"recipe.toml", "metrics.jsonl", "checkpoints"} or "recipe.toml" not in entries:
            return False
        metrics_empty = not self.metrics_path.exists() or self.metrics_path.stat().st_size == 0
        return metrics_empty and (not self.checkpoints.exists() or (self.checkpoints.is_dir() and not any(self.checkpoints.iterdir())))

    def create(self, recipe_toml: str, settings: dict[str, Any]) -> None:
        """Make the run directory holding ``recipe_toml``, ``run.json`` (``settings``), an empty
        metrics.jsonl and checkpoints/, all at once: they are written into a temporary folder
        beside it that is then renamed to the run's name."""
        self.check_new()
        sweep_temporaries(self.path.parent, target=self.path.name)
        with staged_dir(self.path) as staging:
            (staging / "checkpoints").mkdir()
            write_atomic(staging / "recipe.toml", recipe_toml)
            write_atomic(staging / "metrics.jsonl", "")
            write_atomic(staging / RUN_MARKER, json.dumps(settings, indent=2) + "\n")

    def sweep(self) -> None:
        """Remove the temporaries killed processes left in the run directory (and put back a
        best/ or snapshot that was being replaced when its process died)."""
        for folder in (self.path, self.checkpoints, self.snapshots):
            sweep_temporaries(folder)
        if self.checkpoints.is_dir():
            for checkpoint in self.checkpoints.iterdir():
                if CHECKPOINT_NAME.fullmatch(checkpoint.name):
                    sweep_temporaries(checkpoint)
        sweep_temporaries(self.path.parent, target=self.path.name)

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
            with open(staging / TRAINER_FILE, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
        write_atomic(self.checkpoints / "LATEST", name + "\n")
        self._prune_checkpoints(keep=name)
        return final

    def _own_checkpoints(self) -> list[Path]:
        """The checkpoint folders (by tinyzoo's names; anything else in checkpoints/ is not ours), by name."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(p for p in self.checkpoints.iterdir() if p.is_dir() and CHECKPOINT_NAME.fullmatch(p.name))

    def _prune_checkpoints(self, keep: str) -> None:
        done = sorted(self._own_checkpoints(), key=lambda p: p.stat().st_mtime)
        for old in [p for p in done if p.name != keep][: max(0, len(done) - KEEP_CHECKPOINTS)]:
            discard_own_dir(old, model_file_names() | {TRAINER_FILE})
        sweep_temporaries(self.checkpoints)

    def checkpoints_newest_first(self) -> list[Path]:
        """The complete checkpoints, the one LATEST names first, then the others newest first.

        Names sort in training order: s00-e0003 < s00-e0003-b000120 < s00-e0004.
        """
        complete = [p for p in self._own_checkpoints() if (p / TRAINER_FILE).is_file()][::-1]
        pointer = self.checkpoints / "LATEST"
        named = pointer.read_text().strip() if pointer.is_file() else None
        return sorted(complete, key=lambda p: p.name != named)

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint LATEST names, or (should it be gone) the newest complete one; None if there is none."""
        found = self.checkpoints_newest_first()
        return found[0] if found else None

    def load_latest(self, log, device="cpu"):
        """``(path, model, state)`` of the newest checkpoint that can be read, or None when there
        is none: a damaged one is passed over (``log`` says so, in one line) for the one before it."""
        candidates = self.checkpoints_newest_first()
        for number, path in enumerate(candidates):
            try:
                return (path, *self.load_checkpoint(path, device))
            except DamagedCheckpoint as exc:
                after = candidates[number + 1].name if number + 1 < len(candidates) else None
                log(f"checkpoint {path.name} is damaged: {exc}; "
                    + (f"resuming from {after}, the one before it" if after else "no earlier checkpoint is left"))
        return None

    @staticmethod
    def load_checkpoint(path: Path, device="cpu"):
        """``(model, state)`` from a checkpoint directory: the model via ``tinyzoo.adapt.load``,
        ``trainer.pt`` read with ``weights_only=True`` (:func:`read_trainer_state`)."""
        from tinyzoo.adapt import load
        from tinyzoo.hub.digests import verify_safetensors
        from tinyzoo.model_files import WEIGHTS_FILE

        state = read_trainer_state(path / TRAINER_FILE, device)
        try:
            verify_safetensors(path / WEIGHTS_FILE)
        except TinyzooError as exc:
            raise DamagedCheckpoint(str(exc)) from None
        return load(path), state

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
        write_atomic(self.snapshots / "index.json", json.dumps(index[:keep], indent=2) + "\n")
        for dropped in index[keep:]:
            discard_own_dir(self.snapshots / dropped["name"], model_file_names())
        return index[:keep]

    def restore_snapshots(self, index: list[dict]) -> None:
        """Drop snapshot directories that a checkpoint's ``index`` does not list (written after it)."""
        if not self.snapshots.is_dir():
            return
        names = {r["name"] for r in index}
        for path in self.snapshots.iterdir():
            if path.is_dir() and SNAPSHOT_NAME.fullmatch(path.name) and path.name not in names:
                discard_own_dir(path, model_file_names())
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
            val = [(r["epoch"], r.get("val_loss"), r["val_top1"]) for r in records if r.get("val_top1") is not None]
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
    path = Path(run) / RUN_MARKER
    if not path.is_file():
        raise TinyzooError(f"{run}: not a run directory (no {RUN_MARKER}); give the directory a `tinyzoo train --out` wrote")
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TinyzooError(f"{path} cannot be read ({one_line(exc, 100)}); it is written whole by `tinyzoo train`, so this copy is damaged") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("data"), str):
        raise TinyzooError(f"{path} is not the settings of a run (no \"data\" entry); it is written by `tinyzoo train`")
    return settings
