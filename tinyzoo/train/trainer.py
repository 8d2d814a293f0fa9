"""The staged trainer: runs a recipe's stages in order and keeps the run directory up to date.

:class:`Trainer` takes a validated :class:`~tinyzoo.recipe.Recipe` and :class:`TrainSettings`
(where the data is, where the run goes, the device). Constructing it chooses the
:class:`~tinyzoo.runtime.Runtime` (device, precision, memory format, processes) and opens the
data (:class:`~tinyzoo.train.inputs.RunData`), so :meth:`Trainer.validate` works at once;
:meth:`Trainer.run` trains. Each stage (:mod:`tinyzoo.train.stage`): apply its adapter change,
choose the parameters that train (the rest frozen, their BatchNorm in eval mode), build its
optimizer and schedule, then run epochs of optimizer steps (gradient accumulation to the
effective batch, label smoothing, auxiliary losses, gradient clipping), validating and
checkpointing after each epoch. Validation is :mod:`tinyzoo.evaluate.scoring`'s loop, the one
``tinyzoo eval`` runs, with the preprocessing the trainer writes into the model's config.json.

Determinism: every epoch starts from a seed derived from ``(seed, rank, stage, epoch)`` and
every batch's augmentation from ``(seed, epoch, rank, batch)``, and checkpoints hold the
RNG, optimizer, schedule and scaler states, so a resumed run repeats the interrupted epoch
exactly: on CPU its final weights equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyzoo import distributed
from tinyzoo import preprocess as preprocessing
from tinyzoo.cpu_threads import idle_cores
from tinyzoo.data.device_loader import make_loader
from tinyzoo.data.loader import seed_for
from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate import scoring
from tinyzoo.runtime import Runtime
from tinyzoo.train.inputs import RunData
from tinyzoo.train.optim import set_lr
from tinyzoo.train.parts import model_parts, set_train_mode
from tinyzoo.train.rundir import RunDir, checkpoint_name, finite_or_none
from tinyzoo.train.stage import (
    Bar,
    StageRun,
    check_stage_length,
    inputs_count,
    install_head_dropout,
    open_stage,
)
from tinyzoo.train.state import (
    CHECKPOINT_VERSION,
    EpochTotals,
    RunState,
    batch_stats,
    gather_rng,
    restore_rng,
    sum_stats,
)

EPOCH_SEED_STRIDE = 100_000  # loader epochs of stage s are s * stride + e: unique across stages
PLOT_EVERY_SECONDS = 60  # redrawing the PNGs costs ~0.3 s: after each stage, and at most once a minute between
SYNC_EVERY = {"cpu": 10, "cuda": 50}  # micro-batches between host reads of the running metrics (each one waits for the GPU)


@dataclass
class TrainSettings:
    """How to carry out a run; none of it changes the recipe's procedure.

    ``epochs_scale`` shrinks (or stretches) every stage for quick runs: it is applied to
    the recipe (epochs, iterations, step sizes, warm-up) before recipe.toml is written.
    ``feature_cache`` is ``auto`` (cache frozen features where :mod:`tinyzoo.train.features`
    allows) or ``off``. ``checkpoint_every_steps`` adds mid-epoch checkpoints. ``threads``
    (CPU) defaults to :func:`idle_cores`; a resumed run reuses the count it started with.
    """

    data: Path
    out: Path
    cache_dir: Path | None = None
    device: str | None = None
    epochs_scale: float = 1.0
    feature_cache: str = "auto"
    progress: bool = True
    checkpoint_every_steps: int | None = None
    threads: int | None = None
    log: Callable[[str], None] | None = None

    def to_record(self) -> dict:
        """What run.json keeps of these settings (what ``--resume`` and ``tinyzoo eval`` reuse)."""
        return {
            "data": str(Path(self.data).resolve()),
            "cache_dir": None if self.cache_dir is None else str(Path(self.cache_dir).resolve()),
            "device": self.device,
            "epochs_scale": self.epochs_scale,
            "feature_cache": self.feature_cache,
            "threads": self.threads,
        }

    @classmethod
    def for_resume(cls, run: Path, **given) -> TrainSettings:
        """The settings run ``run`` started with (its run.json); ``given`` values that are set win."""
        from tinyzoo.train.rundir import read_settings

        saved = read_settings(run)
        settings = cls(data=Path(saved["data"]), out=Path(run), cache_dir=Path(saved["cache_dir"]) if saved.get("cache_dir") else None,
                       device=saved.get("device"), feature_cache=saved.get("feature_cache") or "auto",
                       threads=saved.get("threads"))  # the same thread count keeps CPU results bit-identical
        return replace(settings, **{k: v for k, v in given.items() if v is not None})


class StopRequested(Exception):
    """Raised inside the loop after Ctrl-C / SIGTERM, once a checkpoint has been written."""


# -- the trainer -----------------------------------------------------------------------------
class Trainer:
    """Runs ``recipe`` with ``settings``; :meth:`run` returns a summary dict, :meth:`validate` scores a model.

    ``model`` (optional) replaces ``tinyzoo.create`` for a fresh run (tests pass small models).
    After :meth:`run`, ``trainer.model`` is the trained network.
    """

    def __init__(self, recipe, settings: TrainSettings, *, model=None):
        from tinyzoo.recipe_check import check_recipe

        self.recipe = scale_recipe(recipe, settings.epochs_scale)
        check_recipe(self.recipe, f"recipe {self.recipe.name!r}")
        self.settings = settings
        self.initial_model = model
        self.model = model
        self.log = settings.log or (lambda msg: print(msg, file=sys.stderr))
        self.stop_requested = False
        self.run_dir = RunDir(settings.out)
        self.plotted = time.monotonic()
        self.state = RunState()
        self.runtime = Runtime.for_training(self.recipe.run, settings.device)
        try:
            use_threads(self.runtime, settings, self.log)
            self.data = RunData.open(self.recipe, settings, self.runtime, self.log)
        except BaseException:
            distributed.shutdown(self.runtime.world)
            raise

    # -- entry points --------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> dict:
        """Train every stage (continuing from the last checkpoint when ``resume``); returns a summary."""
        try:
            model, saved = self._resume() if resume else self._start()
            with stop_on_signals(self):
                model = self._run_stages(model, saved)
            return summary(self.state, self.run_dir)
        finally:
            distributed.shutdown(self.runtime.world)

    def validate(self, model) -> dict:
        """Validation loss, top-1 and top-5 of ``model`` on the validation split (every process's shard, summed).

        Scored by :func:`tinyzoo.evaluate.scoring.score_batches`, with the preprocessing of the
        model's config and the scoring precision, in the batches ``tinyzoo eval`` uses: the
        same numbers as ``tinyzoo eval --tta center`` on one process.
        """
        if self.data.val_split is None:
            raise TinyzooError(f"{self.settings.data} has no validation split to validate on")
        runtime, world = self.runtime.scoring(), self.runtime.world
        runtime.prepare(model)
        loader = make_loader(
            self.data.val_split, scoring.batch_images(runtime.device), shuffle=False, seed=self.recipe.run.seed,
            device=runtime.device, drop_last=False, rank=world.rank, world_size=world.world_size, num_classes=self.data.num_classes,
        )
        tally = scoring.Tally()
        with Bar(world.is_main and self.settings.progress, loader.num_samples, "validating", leave=False) as bar:
            scoring.score_batches(model, loader, bar.counting(tally), views="center", preprocess=preprocessing.of(model), runtime=runtime)
        loss, hits1, hits5, images = runtime.all_sum(tally.sums())
        n = max(images, 1.0)
        return {"loss": loss / n, "top1": hits1 / n, "top5": hits5 / n, "images": int(images)}

    # -- set-up --------------------------------------------------------------------------
    def _start(self):
        """A fresh run: the model built and every stage checked, then the run directory made
        (so a run that cannot start leaves nothing behind); ``(model, None)``."""
        from tinyzoo.recipe import recipe_to_toml

        model = self._fresh_model()
        self._preflight(model)
        error = None
        if self.runtime.world.is_main:
            try:
                self.run_dir.create(recipe_to_toml(self.recipe), self.settings.to_record())
            except TinyzooError as exc:
                error = str(exc)
        error = distributed.broadcast_object(error, self.runtime.world)
        if error is not None:
            raise TinyzooError(error)
        self.state = RunState()
        return model, None

    def _preflight(self, model) -> None:
        """What can fail before training starts, checked before the run directory exists: every
        stage's length in batches, and that the model takes the training and evaluation images."""
        from tinyzoo.input_size import check_input_size

        for index in range(len(self.recipe.stages)):
            check_stage_length(self, index)
        check_input_size(model, self.data.train_pipeline.crop, what="training crops (data.train.crop)", training=True)
        check_input_size(model, self.data.preprocess.view_side, what="evaluation crops (evaluation.crop)")

    def _fresh_model(self):
        torch.manual_seed(self.recipe.run.seed)
        if self.initial_model is not None:
            model = self.initial_model
        else:
            from tinyzoo import adapt

            m, split = self.recipe.model, self.data.train_split
            wnids = split.wnids if len(split.wnids) == m.classes else None
            model = adapt.create(
                m.arch, stem=m.stem, classes=m.classes, wnids=wnids, head_init=m.head_init,
                kernel_resize=m.kernel_resize, convolutionize=m.convolutionize, weights=m.weights,
                recalibrate_bn=m.recalibrate_bn, calibration=self._calibration(), **dict(m.options),
            )
        self._record_preprocess(model)
        return model.to(self.runtime.device)

    def _calibration(self):
        """Training images for ``model.recalibrate_bn`` (``None`` when it is off), chosen by the run's seed."""
        m = self.recipe.model
        if not m.recalibrate_bn:
            return None
        from tinyzoo.data.photos import array_views
        from tinyzoo.registry import get_registry

        images = self.data.train_split.images
        rng = np.random.default_rng(self.recipe.run.seed)
        chosen = np.sort(rng.choice(len(images), size=min(m.calibration_images, len(images)), replace=False))
        native = get_registry().architecture(m.arch).input_size
        return array_views(images[chosen], view="center", native=native, source=f"training split ({len(chosen)} images)")

    def _record_preprocess(self, model) -> None:
        """Write into the model's config how this run feeds it images (crop and normalisation),
        so that best/, snapshots and checkpoints copied out of the run are evaluated alike."""
        if isinstance(getattr(model, "tinyzoo_config", None), dict):
            preprocessing.record(model, self.data.preprocess)

    def _resume(self):
        """Model and the checkpoint's saved states, from the run directory's last readable checkpoint."""
        world = self.runtime.world
        if world.is_main:
            self.run_dir.sweep()
        distributed.barrier(world)
        found = self.run_dir.load_latest(self.log, "cpu")
        if found is None:
            self.log(f"{self.run_dir.path}: no checkpoint yet; starting the run from the beginning")
            if world.is_main:
                self.run_dir.rewrite_metrics([])
                self.run_dir.restore_snapshots([])
            self.state = RunState()
            return self._fresh_model(), None
        path, model, saved = found
        if saved.get("version") != CHECKPOINT_VERSION:
            raise TinyzooError(f"{path}: checkpoint format {saved.get('version')} is not {CHECKPOINT_VERSION}; "
                               "this tinyzoo cannot continue it: start the run again")
        if saved.get("world_size", 1) != world.world_size:
            self.log(f"resuming a run of {saved.get('world_size', 1)} processes with {world.world_size}: not bit-for-bit")
        self.state = state = RunState(**saved["state"])
        if world.is_main:
            self.run_dir.rewrite_metrics(state.metrics)
            self.run_dir.restore_snapshots(state.snapshots)
        self.log(f"resuming {self.run_dir.path} from {path.name}: stage {state.stage + 1}, epoch {state.stage_epoch + 1}"
                 + (f", batch {state.position}" if state.position else ""))
        return model.to(self.runtime.device), saved

    # -- stages --------------------------------------------------------------------------
    def _run_stages(self, model, saved):
        state = self.state
        dropout_handle = None
        for index in range(state.stage, len(self.recipe.stages)):
            change = self.recipe.stages[index].adapt
            if change and index not in state.adapted:
                model = self._apply_adapt(model, change)
                state.adapted.append(index)
            parts = model_parts(model)
            if dropout_handle is not None:
                dropout_handle.remove()
            dropout_handle = install_head_dropout(model, parts.head[0], self.recipe.model.head_dropout) if parts.head else None
            try:
                self._run_stage(open_stage(self, index, model, parts, saved), saved)
            except StopRequested:
                self.log(f"stopped; continue with: tinyzoo train --resume {self.run_dir.path}")
                raise
            saved = None
            state.next_stage(index + 1)
        if self.runtime.world.is_main and state.best_score is None:
            self.run_dir.save_best(model)  # no validation split: best/ is the final model
        distributed.barrier(self.runtime.world)
        self.model = model
        return model

    def _apply_adapt(self, model, change: dict):
        """Apply a stage's adapter change (e.g. ``{stem = "small"}``) keeping every other tensor."""
        from tinyzoo import adapt
        from tinyzoo.input_size import check_input_size

        kernel_resize = change.get("kernel_resize", self.recipe.model.kernel_resize)
        model = adapt.restem(model, change["stem"], kernel_resize=kernel_resize)
        self._record_preprocess(model)
        check_input_size(model, self.data.train_pipeline.crop, what="training crops (data.train.crop)", training=True)
        kernel_resize = model.tinyzoo_config.get("kernel_resize", kernel_resize)  # None resolved to the family's default
        self.log(f"adapter change before this stage: stem {change['stem']} (kernel_resize {kernel_resize})")
        return model.to(self.runtime.device)

    def _run_stage(self, stage: StageRun, saved) -> None:
        """Run ``stage`` from where the state says (its start, or a checkpoint's epoch and batch)."""
        if self.state.stage_epoch >= stage.epochs:
            return  # resumed from the checkpoint that ended this stage
        self.log(stage.describe(len(self.recipe.stages)))
        while self.state.stage_epoch < stage.epochs:
            self._run_epoch(stage, saved)
            saved = None

    # -- one epoch ---------------------------------------------------------------------------
    def _run_epoch(self, stage: StageRun, saved) -> None:
        """The current epoch of ``stage``, from the state's position (with ``saved``'s RNG when mid-epoch)."""
        state, seed, rank = self.state, self.recipe.run.seed, self.runtime.world.rank
        epoch = state.stage_epoch
        if saved is not None and state.position:
            restore_rng(saved["rng"], rank)
        else:
            torch.manual_seed(epoch_seed(seed, rank, stage.index, epoch))
        totals = EpochTotals(**(state.partial or {})) if state.position else EpochTotals()
        set_train_mode(stage.model, stage.spec.freeze_bn)
        stage.loader.set_epoch(stage.index * EPOCH_SEED_STRIDE + epoch)
        batches = stage.batches(epoch, state.position, view_seed=epoch_seed(seed, 0, stage.index, epoch))
        self._train_epoch(stage, epoch, batches, totals)
        self._end_epoch(stage, epoch, totals)

    def _train_epoch(self, stage: StageRun, epoch: int, batches, totals: EpochTotals) -> None:
        """Micro-batches until the epoch's steps are done, checkpointing mid-epoch when due or asked."""
        state, world = self.state, self.runtime.world
        micro_total, images = stage.steps_in(epoch) * stage.accumulation, stage.spec.batch_size * world.world_size
        pending: list[dict] = []
        started, seconds_before = time.perf_counter(), totals.seconds
        sync_every = SYNC_EVERY.get(self.runtime.device.type, 10)
        shown = world.is_main and self.settings.progress
        with Bar(shown, micro_total * images, f"{stage.spec.name} {epoch + 1}/{stage.epochs}", done=state.position * images) as bar:
            for micro, (inputs, targets) in enumerate(batches, start=state.position):
                pending.append(self._train_step(stage, micro, inputs, targets))
                state.position = micro + 1
                bar.update(inputs_count(inputs) * world.world_size)
                if len(pending) >= sync_every or state.position == micro_total:
                    totals.add(sum_stats(pending))
                    pending = []
                    bar.show(totals)
                if stage.ends_step(micro) and state.position < micro_total and self._should_stop_or_checkpoint(state.stage_step, sync_every):
                    totals.add(sum_stats(pending))
                    pending = []
                    totals.seconds = seconds_before + time.perf_counter() - started
                    self._checkpoint(stage, totals)
                    if self._stop_agreed():
                        raise StopRequested
                if state.position >= micro_total:
                    break
        totals.add(sum_stats(pending))
        totals.seconds = seconds_before + time.perf_counter() - started

    def _train_step(self, stage: StageRun, micro: int, inputs, targets) -> dict:
        """Micro-batch ``micro``: forward, loss, backward; on the last of an optimizer step, the step."""
        runtime, state = self.runtime, self.state
        last_of_step = stage.ends_step(micro)
        with stage.accumulating(last_of_step, runtime.world):
            with runtime.autocast():
                logits, aux = stage.forward(inputs, runtime)
            loss = stage.loss(logits, aux, targets)
            runtime.backward(loss / stage.accumulation, stage.scaler)
        if last_of_step:
            lr = stage.schedule.lr(state.stage_step)
            set_lr(stage.optimizer, lr)
            runtime.optimizer_step(stage.optimizer, stage.scaler, clip_grad_norm=stage.spec.clip_grad_norm)
            state.stepped(lr, (micro + 1) / (stage.steps_per_epoch * stage.accumulation))
        return batch_stats(logits, targets, loss)

    def _should_stop_or_checkpoint(self, stage_step: int, sync_every: int) -> bool:
        """Whether a mid-epoch checkpoint is due: periodic, or asked for by Ctrl-C / SIGTERM."""
        every = self.settings.checkpoint_every_steps
        if every and stage_step % every == 0:
            return True
        if self.runtime.world.distributed and stage_step % sync_every:
            return False  # processes agree on stopping at a few steps only: each agreement is a collective
        return self._stop_agreed()

    def _stop_agreed(self) -> bool:
        """Whether any process was asked to stop (every process agrees)."""
        return self.runtime.all_sum([1.0 if self.stop_requested else 0.0])[0] > 0

    # -- epoch end: validation, metrics, snapshots, checkpoint ------------------------------
    def _end_epoch(self, stage: StageRun, epoch: int, totals: EpochTotals) -> None:
        state, world = self.state, self.runtime.world
        record = self._epoch_record(stage, epoch, totals)
        last_epoch = epoch + 1 == stage.epochs
        every = max(1, round(self.recipe.evaluation.every_epochs))
        if self.data.val_split is not None and ((epoch + 1) % every == 0 or last_epoch):
            self._validate_into(record, stage)
        state.metrics.append(record)
        if world.is_main:
            self._publish(stage, epoch, record)
        state.best_score = distributed.broadcast_object(state.best_score, world)
        self.log(format_record(record))
        state.epoch_ended(epoch + 1)
        checkpoint_every = self.recipe.run.checkpoint_every_epochs
        due = last_epoch or checkpoint_every <= 1 or (epoch + 1) % max(1, round(checkpoint_every)) == 0
        stop = self._stop_agreed()
        if due or stop:
            self._checkpoint(stage, None)
        if world.is_main and (last_epoch or stop or time.monotonic() - self.plotted > PLOT_EVERY_SECONDS):
            self.run_dir.plot(state.metrics, state.lr_trace)
            self.plotted = time.monotonic()
        if stop and not (last_epoch and stage.index == len(self.recipe.stages) - 1):
            raise StopRequested

    def _epoch_record(self, stage: StageRun, epoch: int, totals: EpochTotals) -> dict[str, Any]:
        """The epoch's metrics.jsonl record (training figures summed over the processes)."""
        state = self.state
        loss, correct1, correct5, count = self.runtime.all_sum(totals.sums())
        images = max(count, 1.0)
        state.epochs_done = round(state.epochs_done + stage.steps_in(epoch) / stage.steps_per_epoch, 6)
        return {
            "epoch": state.epochs_done,
            "stage": stage.spec.name,
            "stage_index": stage.index,
            "stage_epoch": epoch + 1,
            "step": state.global_step,
            "lr": state.lr_trace[-1][2] if state.lr_trace else None,
            "train_loss": finite_or_none(loss / images),
            "train_top1": correct1 / images,
            "train_top5": correct5 / images,
            "train_images": int(count),
            "time": round(totals.seconds, 3),
            "images_per_s": round(count / max(totals.seconds, 1e-9), 1),
        }

    def _validate_into(self, record: dict, stage: StageRun) -> None:
        """Validate the stage's model; its figures go into ``record`` and the plateau schedule."""
        start = time.perf_counter()
        val = self.validate(stage.model)
        record.update({"val_loss": finite_or_none(val["loss"]), "val_top1": val["top1"], "val_top5": val["top5"],
                       "val_time": round(time.perf_counter() - start, 3)})
        if stage.schedule.observe(1.0 - val["top1"]):
            self.log(f"validation error stopped improving: lr x{stage.spec.schedule.factor}")

    def _publish(self, stage: StageRun, epoch: int, record: dict) -> None:
        """The main process's epoch-end writes: metrics.jsonl, best/, snapshots/, lr.csv."""
        state = self.state
        self.run_dir.append_metrics(record)
        if "val_top1" in record:
            score = record[self.recipe.run.snapshot_metric]
            if state.best_score is None or score > state.best_score:
                state.best_score = score
                self.run_dir.save_best(stage.model)
            tag = checkpoint_name(stage.index, epoch + 1)
            state.snapshots = self.run_dir.add_snapshot(stage.model, score, tag, self.recipe.run.keep_snapshots, state.snapshots)
        self.run_dir.write_lr_trace(state.lr_trace)

    def _checkpoint(self, stage: StageRun, totals: EpochTotals | None) -> None:
        """Write a checkpoint of the current position, mid-epoch when ``totals`` are given
        (every process takes part; the main one writes)."""
        state, world = self.state, self.runtime.world
        state.schedule = stage.schedule.state_dict()
        state.partial = asdict(totals) if totals is not None else None
        rng = gather_rng(world)
        if world.is_main:
            payload = {
                "version": CHECKPOINT_VERSION,
                "state": asdict(state),
                "optimizer": stage.optimizer.state_dict(),
                "scaler": stage.scaler.state_dict() if stage.scaler is not None else None,
                "rng": rng,
                "world_size": world.world_size,
                "recipe": self.recipe.name,
            }
            name = checkpoint_name(stage.index, state.stage_epoch) + (f"-b{state.position:06d}" if totals is not None else "")
            self.run_dir.save_checkpoint(name, stage.model, payload)
        distributed.barrier(world)


# -- small pieces ------------------------------------------------------------------------------
def scale_recipe(recipe, factor: float):
    """A copy of ``recipe`` with every stage's length (and its schedule's epoch counts) times ``factor``."""
    if factor == 1.0:
        return recipe
    if factor <= 0:
        raise TinyzooError(f"--epochs-scale must be positive, not {factor}")
    stages = []
    for stage in recipe.stages:
        sched = stage.schedule
        new_sched = replace(
            sched,
            step_size=None if sched.step_size is None else (max(1, round(sched.step_size * factor)) if stage.iterations else sched.step_size * factor),
            warmup_epochs=sched.warmup_epochs * factor,
        )
        stages.append(replace(
            stage,
            epochs=None if stage.epochs is None else stage.epochs * factor,
            iterations=None if stage.iterations is None else max(1, round(stage.iterations * factor)),
            schedule=new_sched,
        ))
    return replace(recipe, stages=stages)


def use_threads(runtime: Runtime, settings: TrainSettings, log) -> None:
    """On the CPU, torch's thread count: ``settings.threads``, else the idle cores (recorded in the settings)."""
    if runtime.device.type != "cpu":
        return
    settings.threads = settings.threads or idle_cores(runtime.world.world_size)
    torch.set_num_threads(settings.threads)
    if runtime.world.is_main:
        log(f"training on the CPU with {settings.threads} thread(s)")


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer):
    """Ctrl-C / SIGTERM set ``trainer.stop_requested``: the current step finishes, a checkpoint is
    written, the run stops. A second Ctrl-C stops at once."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        trainer.log("stopping after this step: writing a checkpoint (Ctrl-C again to stop at once)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def epoch_seed(seed: int, rank: int, stage: int, epoch: int) -> int:
    """The torch seed an epoch starts from (dropout and anything else drawing from the global RNG)."""
    return seed_for(seed, 7919, rank, stage, epoch)


def summary(state: RunState, run_dir: RunDir) -> dict:
    """What :meth:`Trainer.run` returns: where the run is, how long it trained, its validation figures."""
    vals = [r for r in state.metrics if r.get("val_top1") is not None]
    return {
        "run": str(run_dir.path),
        "epochs": state.epochs_done,
        "steps": state.global_step,
        "best_val_top1": max((r["val_top1"] for r in vals), default=None),
        "final_val_top1": vals[-1]["val_top1"] if vals else None,
        "final_val_top5": vals[-1]["val_top5"] if vals else None,
        "train_seconds": round(sum(r["time"] for r in state.metrics), 2),
        "last": state.metrics[-1] if state.metrics else {},
        "best": str(run_dir.best),
        "checkpoint": str(run_dir.latest_checkpoint()),
    }


def format_record(record: dict) -> str:
    """One log line for an epoch's metrics."""
    parts = [f"epoch {record['epoch']:.2f} [{record['stage']} {record['stage_epoch']}]",
             f"loss {record['train_loss']:.4f}" if record.get("train_loss") is not None else "loss nan",
             f"acc {100 * record['train_top1']:.2f}%"]
    if record.get("val_top1") is not None:
        parts.append(f"val {100 * record['val_top1']:.2f}% (top-5 {100 * record['val_top5']:.2f}%)")
    if record.get("lr") is not None:
        parts.append(f"lr {record['lr']:.3g}")
    parts.append(f"{record['images_per_s']:.0f} img/s")
    return "  ".join(parts)
