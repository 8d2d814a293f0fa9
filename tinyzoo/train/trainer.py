"""The staged trainer: runs a recipe's stages in order and keeps the run directory up to date.

:class:`Trainer` takes a validated :class:`~tinyzoo.recipe.Recipe` and :class:`TrainSettings`
(where the data is, where the run goes, the device) and :meth:`Trainer.run` trains. Each
stage: apply its adapter change, choose the parameters that train (the rest frozen, their
BatchNorm in eval mode), build its optimizer and schedule, then run epochs of optimizer
steps (gradient accumulation to the effective batch, label smoothing, auxiliary losses,
gradient clipping), validating and checkpointing after each epoch.

Determinism: every epoch starts from a seed derived from ``(seed, rank, stage, epoch)`` and
every batch's augmentation from ``(seed, epoch, rank, batch)``, and checkpoints hold the
RNG, optimizer, schedule and scaler states, so a resumed run repeats the interrupted epoch
exactly: on CPU its final weights equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyzoo.console import progress
from tinyzoo.cpu_threads import environment_threads, idle_cores  # noqa: F401  (environment_threads: imported from here by callers)
from tinyzoo.data.augment import Pipeline
from tinyzoo.data.cache import open_split
from tinyzoo.data.device_loader import make_loader
from tinyzoo.data.loader import seed_for
from tinyzoo.errors import TinyzooError
from tinyzoo.train import distributed
from tinyzoo.train.features import cache_batches, cacheable, estimated_bytes, extract_everywhere, fixed_views, memory_budget, render_view
from tinyzoo.train.optim import LrSchedule, build_optimizer, set_lr
from tinyzoo.train.parts import ModelParts, freeze, model_parts, set_train_mode, trainable_names
from tinyzoo.atomic_files import write_atomic
from tinyzoo.train.rundir import RunDir, checkpoint_name, finite_or_none

CHECKPOINT_VERSION = 1
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


class StopRequested(Exception):
    """Raised inside the loop after Ctrl-C / SIGTERM, once a checkpoint has been written."""


# -- recipe helpers --------------------------------------------------------------------------
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


def resolve_device(name: str | None):
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TinyzooError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def amp_dtype(mode: str, device):
    """The autocast dtype for ``run.amp`` on ``device``, or None for full precision."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16":
        return torch.float16
    return torch.bfloat16


def channels_last_helps(device, run_config) -> bool:
    """Whether to train in channels_last: ``run.channels_last``, on CUDA and CPU alike.

    Tensor cores want NHWC; on this project's 2-core CPU channels_last trained convnets
    1.2-1.4x faster than NCHW (docs/benchmarks.md, "Training").
    """
    return bool(run_config.channels_last) and device.type in ("cuda", "cpu")


def install_head_dropout(model, path: str, p: float):
    """Dropout with probability ``p`` on the input of module ``path`` while it is training."""
    if p <= 0:
        return None

    def hook(module, args):
        return (F.dropout(args[0], p, module.training), *args[1:])

    return model.get_submodule(path).register_forward_pre_hook(hook)


def split_outputs(output, module) -> tuple[Any, list]:
    """``(main logits, auxiliary logits)`` from a forward's output and the model's ``aux_logits``."""
    aux: list = []
    if isinstance(output, (tuple, list)):
        output, extra = output[0], output[1:]
        aux += [t for t in extra if isinstance(t, torch.Tensor)]
    stored = getattr(module, "aux_logits", None)
    if isinstance(stored, (tuple, list)):
        aux += [t for t in stored if isinstance(t, torch.Tensor)]
    return output, aux


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


# -- the trainer -----------------------------------------------------------------------------
class Trainer:
    """Runs ``recipe`` with ``settings``; :meth:`run` returns a summary dict.

    ``model`` (optional) replaces ``tinyzoo.create`` for a fresh run (tests pass small models).
    """

    def __init__(self, recipe, settings: TrainSettings, *, model=None):
        self.recipe = scale_recipe(recipe, settings.epochs_scale)
        self.settings = settings
        self.initial_model = model
        self.log = settings.log or (lambda msg: print(msg, file=sys.stderr))
        self.stop_requested = False
        self.run_dir = RunDir(settings.out)
        self.plotted = time.monotonic()

    # -- entry points --------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> dict:
        """Train every stage (continuing from the last checkpoint when ``resume``); returns a summary."""
        from tinyzoo.recipe import recipe_to_toml

        device = resolve_device(self.settings.device or self.recipe.run.device)
        self.world = distributed.init(device)
        self.device = distributed.device_for(self.world, device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()  # autotuning may pick other kernels after a resume
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if self.device.type == "cpu":
            self.settings.threads = self.settings.threads or idle_cores(self.world.world_size)
            torch.set_num_threads(self.settings.threads)
            if self.world.is_main:
                self.log(f"training on the CPU with {self.settings.threads} thread(s)")
        self.amp = amp_dtype(self.recipe.run.amp, self.device)
        self.channels_last = channels_last_helps(self.device, self.recipe.run)
        try:
            self._open_data()
            if resume:
                model, state, tensors = self._resume()
            else:
                if self.world.is_main:
                    self.run_dir.create(recipe_to_toml(self.recipe))
                    self._write_settings()
                distributed.barrier(self.world)
                model, state, tensors = self._fresh_model(), RunState(), None
            self.state = state
            with self._signals():
                model = self._run_stages(model, tensors)
            return self._summary(model)
        finally:
            distributed.shutdown(self.world)

    # -- set-up --------------------------------------------------------------------------
    def _write_settings(self) -> None:
        data = {
            "data": str(Path(self.settings.data).resolve()),
            "cache_dir": None if self.settings.cache_dir is None else str(Path(self.settings.cache_dir).resolve()),
            "device": self.settings.device,
            "epochs_scale": self.settings.epochs_scale,
            "feature_cache": self.settings.feature_cache,
            "threads": self.settings.threads,
        }
        write_atomic(self.run_dir.path / "run.json", json.dumps(data, indent=2) + "\n")

    def _open_data(self) -> None:
        root = self.settings.data
        self.train_split = open_split(root, "train", cache_dir=self.settings.cache_dir)
        try:
            self.val_split = open_split(root, "val", cache_dir=self.settings.cache_dir)
        except TinyzooError as exc:
            self.log(f"no validation split ({exc}); training without validation")
            self.val_split = None
        if self.val_split is not None and len(self.val_split) == 0:
            self.val_split = None
        train_cfg = dict(self.recipe.data.train)
        eval_cfg = {"crop": self.recipe.evaluation.crop, **dict(self.recipe.data.eval)}
        if self.channels_last:
            train_cfg.setdefault("channels_last", True)
            eval_cfg.setdefault("channels_last", True)
        self.train_pipeline = Pipeline.from_config(train_cfg, stats=self.train_split)
        self.eval_pipeline = Pipeline.from_config(eval_cfg, stats=self.train_split, train=False)
        self.num_classes = self.recipe.model.classes
        if self.train_split.num_classes > self.num_classes:
            raise TinyzooError(
                f"model.classes is {self.num_classes} but the dataset at {root} has {self.train_split.num_classes} classes; "
                f"use --set model.classes={self.train_split.num_classes}"
            )

    def _fresh_model(self):
        torch.manual_seed(self.recipe.run.seed)
        if self.initial_model is not None:
            model = self.initial_model
        else:
            import tinyzoo.adapt as adapt

            m = self.recipe.model
            wnids = self.train_split.wnids if len(self.train_split.wnids) == m.classes else None
            model = adapt.create(
                m.arch, stem=m.stem, classes=m.classes, wnids=wnids, head_init=m.head_init,
                kernel_resize=m.kernel_resize, convolutionize=m.convolutionize, weights=m.weights, **dict(m.options),
            )
        self._record_preprocess(model)
        return model.to(self.device)

    def _record_preprocess(self, model) -> None:
        """Write into the model's config how this run feeds it images (crop and normalisation),
        so that best/, snapshots and checkpoints copied out of the run are evaluated alike."""
        config = getattr(model, "tinyzoo_config", None)
        if not isinstance(config, dict):
            return
        pipeline = self.eval_pipeline
        entry: dict = {"crop": self.recipe.evaluation.crop, "normalize": pipeline.normalize}
        if pipeline.normalize in ("imagenet", "dataset", "custom"):
            mean, std = pipeline._channel_mean_std()
            entry["mean"], entry["std"] = [float(v) for v in mean], [float(v) for v in std]
        config["preprocess"] = entry

    def _resume(self):
        """Model, state and tensor states from the run directory's last checkpoint."""
        path = self.run_dir.latest_checkpoint()
        if path is None:
            self.log(f"{self.run_dir.path}: no checkpoint yet; starting the run from the beginning")
            if self.world.is_main:
                self.run_dir.rewrite_metrics([])
                self.run_dir.restore_snapshots([])
            return self._fresh_model(), RunState(), None
        model, saved = RunDir.load_checkpoint(path, "cpu")
        if saved.get("version") != CHECKPOINT_VERSION:
            raise TinyzooError(f"{path}: checkpoint version {saved.get('version')} is not {CHECKPOINT_VERSION}")
        if saved.get("world_size", 1) != self.world.world_size:
            self.log(f"resuming a run of {saved.get('world_size', 1)} processes with {self.world.world_size}: not bit-for-bit")
        state = RunState(**saved["state"])
        if self.world.is_main:
            self.run_dir.rewrite_metrics(state.metrics)
            self.run_dir.restore_snapshots(state.snapshots)
        self.log(f"resuming {self.run_dir.path} from {path.name}: stage {state.stage + 1}, epoch {state.stage_epoch + 1}"
                 + (f", batch {state.position}" if state.position else ""))
        return model.to(self.device), state, saved

    @contextlib.contextmanager
    def _signals(self):
        """Ctrl-C / SIGTERM: finish the current step, checkpoint, stop. A second Ctrl-C stops at once."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            self.log("stopping after this step: writing a checkpoint (Ctrl-C again to stop at once)")

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # -- stages --------------------------------------------------------------------------
    def _run_stages(self, model, saved):
        state = self.state
        dropout_handle = None
        for index in range(state.stage, len(self.recipe.stages)):
            stage = self.recipe.stages[index]
            if stage.adapt and index not in state.adapted:
                model = self._apply_adapt(model, stage.adapt)
                state.adapted.append(index)
            parts = model_parts(model)
            if dropout_handle is not None:
                dropout_handle.remove()
            dropout_handle = install_head_dropout(model, parts.head[0], self.recipe.model.head_dropout) if parts.head else None
            try:
                self._run_stage(index, stage, model, parts, saved if index == state.stage else None)
            except StopRequested:
                self.log(f"stopped; continue with: tinyzoo train --resume {self.run_dir.path}")
                raise
            saved = None
            state.stage, state.stage_epoch, state.stage_step, state.position = index + 1, 0, 0, 0
            state.schedule, state.partial = None, None
        if self.world.is_main and state.best_score is None:
            self.run_dir.save_best(model)  # no validation split: best/ is the final model
        distributed.barrier(self.world)
        self.model = model
        return model

    def _apply_adapt(self, model, change: dict):
        """Apply a stage's adapter change (e.g. ``{stem = "small"}``) keeping every other tensor."""
        import tinyzoo.adapt as adapt

        unknown = sorted(set(change) - {"stem", "kernel_resize"})
        if unknown:
            raise TinyzooError(f"stage adapt: unknown change {unknown[0]!r}; a stage can change stem (and kernel_resize)")
        kernel_resize = change.get("kernel_resize", self.recipe.model.kernel_resize)
        model = adapt.restem(model, change["stem"], kernel_resize=kernel_resize)
        self._record_preprocess(model)
        self.log(f"adapter change before this stage: stem {change['stem']} (kernel_resize {kernel_resize})")
        return model.to(self.device)

    def _stage_plan(self, stage, loader_batches: int) -> tuple[int, int, int]:
        """``(steps per epoch, total steps, epochs)`` of a stage whose epoch has ``loader_batches`` batches."""
        accumulation = stage.accumulation
        steps_per_epoch = loader_batches // accumulation
        if steps_per_epoch < 1:
            raise TinyzooError(
                f"stage {stage.name!r}: an epoch has {loader_batches} batches of {stage.batch_size}, fewer than the "
                f"{accumulation} accumulated per optimizer step; lower batch_size or effective_batch"
            )
        total = stage.iterations if stage.iterations is not None else max(1, round(stage.epochs * steps_per_epoch))
        return steps_per_epoch, total, math.ceil(total / steps_per_epoch)

    def _run_stage(self, index: int, stage, model, parts: ModelParts, saved) -> None:
        """Run stage ``index`` from where the state says (its start, or a checkpoint's epoch and batch)."""
        state, world = self.state, self.world
        names = trainable_names(model, stage.train_patterns, parts)
        freeze(model, names)
        params = [p for n, p in model.named_parameters() if p.requires_grad]
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(params, stage.optimizer)
        scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        loader = make_loader(
            self.train_split, stage.batch_size, shuffle=True, seed=self.recipe.run.seed, pipeline=self.train_pipeline,
            device=self.device, drop_last=True, rank=world.rank, world_size=world.world_size, num_classes=self.num_classes,
        )
        steps_per_epoch, total_steps, epochs = self._stage_plan(stage, len(loader))
        if state.stage_epoch >= epochs:
            return  # resumed from the checkpoint that ended this stage
        set_train_mode(model, stage.freeze_bn)
        head_only = parts.head and set(names) == set(trainable_names(model, ["head"], parts))
        cache = self._feature_cache(stage, model, parts, loader) if head_only and stage.freeze_bn else None
        # Iteration stages (Zhai) give step_size in optimizer steps, as Caffe does; epoch stages in epochs.
        schedule = LrSchedule(stage.schedule, stage.optimizer.lr, total_steps, steps_per_epoch,
                              step_size_unit="steps" if stage.iterations is not None else "epochs")
        if saved is not None:
            optimizer.load_state_dict(saved["optimizer"])
            if scaler is not None and saved.get("scaler"):
                scaler.load_state_dict(saved["scaler"])
        if state.schedule:
            schedule.load_state_dict(state.schedule)
        forward_model = distributed.wrap(self._compiled(model), world, self.device) if cache is None else None
        head_model = distributed.wrap(HeadStack(model, parts.head), world, self.device) if cache is not None else None
        self.log(
            f"stage {index + 1}/{len(self.recipe.stages)} {stage.name!r}: trains {len(names)} tensors "
            f"({sum(p.numel() for p in params):,} parameters), {total_steps} steps of {stage.accumulation * stage.batch_size} images"
            + (", on cached features" if cache is not None else "")
        )
        accumulation = stage.accumulation
        while state.stage_epoch < epochs:
            epoch = state.stage_epoch
            steps_now = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            loader_epoch = index * EPOCH_SEED_STRIDE + epoch
            if saved is not None and state.position:
                restore_rng(saved["rng"], world.rank)
            else:
                torch.manual_seed(epoch_seed(self.recipe.run.seed, world.rank, index, epoch))
            totals = EpochTotals(**(state.partial or {})) if state.position else EpochTotals()
            saved = None
            set_train_mode(model, stage.freeze_bn)
            loader.set_epoch(loader_epoch)
            if cache is not None:
                source = cache_batches(cache, loader, steps_now * accumulation, state.position,
                                       view_seed=epoch_seed(self.recipe.run.seed, 0, index, epoch))
            else:
                source = loader_from(loader, state.position, steps_now * accumulation)
            self._train_epoch(index, stage, epoch, epochs, model, forward_model, head_model, parts, source, optimizer, scaler,
                              schedule, totals, steps_now, steps_per_epoch, accumulation)
            self._end_epoch(index, stage, epoch, epochs, steps_now, steps_per_epoch, model, optimizer, scaler, schedule, totals)

    def _compiled(self, model):
        if not self.recipe.run.compile:
            return model
        return torch.compile(model)

    # -- the feature cache -----------------------------------------------------------------
    def _feature_cache(self, stage, model, parts: ModelParts, loader):
        """Cached head inputs for a head-only stage, or None when they cannot (or should not) be cached."""
        if self.settings.feature_cache == "off":
            return None
        views = fixed_views(self.train_pipeline)
        if views is None:
            if self.recipe.data.fixed_views:
                self.log("data.fixed_views is set but the training pipeline's views are not a finite set: no feature cache")
            return None
        if len(views) > 1 and not self.recipe.data.fixed_views:
            return None  # several views: the recipe must say that sampling them uniformly is what it wants
        sample = torch.from_numpy(np.array(self.train_split.images[: min(8, len(self.train_split))])).to(self.device)
        probe = render_view(self.train_pipeline, sample, views[0])
        forward = self._forward_fn(model)
        if not cacheable(model, parts.head, forward, probe):
            self.log("frozen features are not deterministic (dropout or BatchNorm in training mode before the head): no feature cache")
            return None
        n = len(self.train_split)
        need = estimated_bytes(model, parts.head, forward, probe, n, len(views))
        if need > memory_budget(self.device):
            self.log(f"a feature cache would take {need / 2**30:.1f} GiB, more than allowed: full forwards instead")
            return None
        share = -(-n // self.world.world_size)
        bar = progress(total=share * len(views), desc="caching features", unit="img", leave=False) if self.world.is_main and self.settings.progress else None
        start = time.perf_counter()
        cache = extract_everywhere(
            model, parts.head, self.train_split.images, self.train_split.labels, self.train_pipeline, views,
            forward=forward, device=self.device, world=self.world, batch_size=max(stage.batch_size, 64),
            progress=(lambda k: bar.update(k * len(views))) if bar is not None else None,
        )
        if bar is not None:
            bar.close()
        self.log(f"cached {len(views)} view(s) of {len(cache)} images ({cache.nbytes() / 2**20:.1f} MiB) in {time.perf_counter() - start:.1f}s")
        return cache

    def _forward_fn(self, model):
        """``forward(images)`` as training runs it: memory format and autocast."""

        def forward(images):
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                return model(images)

        return forward

    def _autocast(self):

        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    # -- one epoch ---------------------------------------------------------------------------
    def _train_epoch(self, index, stage, epoch, epochs, model, forward_model, head_model, parts, source, optimizer, scaler,
                     schedule, totals: EpochTotals, steps_now, steps_per_epoch, accumulation) -> None:


        state, world = self.state, self.world
        micro_total = steps_now * accumulation
        bar = None
        if world.is_main and self.settings.progress:
            bar = progress(total=micro_total * stage.batch_size * world.world_size, desc=f"{stage.name} {epoch + 1}/{epochs}", unit="img", leave=True)
            bar.update(state.position * stage.batch_size * world.world_size)
        pending: list[dict] = []
        started = time.perf_counter()
        seconds_before = totals.seconds
        module = distributed.unwrap(forward_model) if forward_model is not None else model
        runner = forward_model if forward_model is not None else head_model
        sync_every = SYNC_EVERY.get(self.device.type, 10)
        try:
            for micro, (inputs, targets) in enumerate(source, start=state.position):
                last_of_step = (micro + 1) % accumulation == 0
                sync = contextlib.nullcontext() if last_of_step or not world.distributed else runner.no_sync()
                with sync:
                    with self._autocast():
                        if forward_model is not None:
                            if self.channels_last and inputs.dim() == 4:
                                inputs = inputs.contiguous(memory_format=torch.channels_last)
                            output = forward_model(inputs)
                            logits, aux = split_outputs(output, module)
                        else:
                            outputs = head_model(inputs)
                            logits, aux = outputs[0], list(outputs[1:])
                    loss = F.cross_entropy(logits.float(), targets, label_smoothing=stage.label_smoothing)
                    for extra in aux:
                        loss = loss + stage.aux_loss_weight * F.cross_entropy(extra.float(), targets, label_smoothing=stage.label_smoothing)
                    scaled = loss / accumulation
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                pending.append(batch_stats(logits, targets, loss))
                if last_of_step:
                    lr = schedule.lr(state.stage_step)
                    set_lr(optimizer, lr)
                    if stage.clip_grad_norm is not None:
                        if scaler is not None:
                            scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], stage.clip_grad_norm)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    state.stage_step += 1
                    state.global_step += 1
                    state.lr_trace.append((state.global_step, round(state.epochs_done + (micro + 1) / (steps_per_epoch * accumulation), 6), lr))
                state.position = micro + 1
                if bar is not None:
                    bar.update(inputs_count(inputs) * world.world_size)
                if len(pending) >= sync_every or state.position == micro_total:
                    totals.add(sum_stats(pending))
                    pending = []
                    if bar is not None and totals.images:
                        # tqdm's own rate is the images/s (unit "img").
                        bar.set_postfix(loss=f"{totals.loss / totals.images:.3f}", acc=f"{totals.correct1 / totals.images:.3f}")
                if last_of_step and state.position < micro_total and self._should_stop_or_checkpoint(state.stage_step, sync_every):
                    totals.add(sum_stats(pending))
                    pending = []
                    totals.seconds = seconds_before + time.perf_counter() - started
                    self._checkpoint(index, model, optimizer, scaler, schedule, totals, mid_epoch=True)
                    if self._stop_agreed():
                        raise StopRequested
                if state.position >= micro_total:
                    break
        finally:
            if bar is not None:
                bar.close()
        totals.add(sum_stats(pending))
        totals.seconds = seconds_before + time.perf_counter() - started

    def _should_stop_or_checkpoint(self, stage_step: int, sync_every: int) -> bool:
        """Whether a mid-epoch checkpoint is due: periodic, or asked for by Ctrl-C / SIGTERM."""
        every = self.settings.checkpoint_every_steps
        if every and stage_step % every == 0:
            return True
        if self.world.distributed and stage_step % sync_every:
            return False  # processes agree on stopping at a few steps only: each agreement is a collective
        return self._stop_agreed()

    def _stop_agreed(self) -> bool:
        """Whether any process was asked to stop (every process agrees)."""
        flag = 1.0 if self.stop_requested else 0.0
        if self.world.distributed:
            flag = distributed.all_sum([flag], self.world, self.device)[0]
        return flag > 0

    # -- epoch end: validation, metrics, snapshots, checkpoint ------------------------------
    def _end_epoch(self, index, stage, epoch, epochs, steps_now, steps_per_epoch, model, optimizer, scaler, schedule,
                   totals: EpochTotals) -> None:
        state, world = self.state, self.world
        sums = distributed.all_sum([totals.loss, totals.correct1, totals.correct5, float(totals.images)], world, self.device)
        images = max(sums[3], 1.0)
        epoch_fraction = steps_now / steps_per_epoch
        state.epochs_done = round(state.epochs_done + epoch_fraction, 6)
        record: dict[str, Any] = {
            "epoch": state.epochs_done,
            "stage": stage.name,
            "stage_index": index,
            "stage_epoch": epoch + 1,
            "step": state.global_step,
            "lr": state.lr_trace[-1][2] if state.lr_trace else None,
            "train_loss": finite_or_none(sums[0] / images),
            "train_top1": sums[1] / images,
            "train_top5": sums[2] / images,
            "train_images": int(sums[3]),
            "time": round(totals.seconds, 3),
            "images_per_s": round(sums[3] / max(totals.seconds, 1e-9), 1),
        }
        last_epoch = epoch + 1 == epochs
        every = max(1, round(self.recipe.evaluation.every_epochs))
        if self.val_split is not None and ((epoch + 1) % every == 0 or last_epoch):
            start = time.perf_counter()
            val = self.validate(model)
            record.update({"val_loss": finite_or_none(val["loss"]), "val_top1": val["top1"], "val_top5": val["top5"],
                           "val_time": round(time.perf_counter() - start, 3)})
            if schedule.observe(1.0 - val["top1"]):
                self.log(f"validation error stopped improving: lr x{stage.schedule.factor}")
        state.metrics.append(record)
        if world.is_main:
            self.run_dir.append_metrics(record)
            if "val_top1" in record:
                score = record[self.recipe.run.snapshot_metric]
                tag = checkpoint_name(index, epoch + 1)
                if state.best_score is None or score > state.best_score:
                    state.best_score = score
                    self.run_dir.save_best(model)
                state.snapshots = self.run_dir.add_snapshot(model, score, tag, self.recipe.run.keep_snapshots, state.snapshots)
            self.run_dir.write_lr_trace(state.lr_trace)
        state.best_score = distributed.broadcast_object(state.best_score, world)
        self.log(format_record(record))
        state.stage_epoch = epoch + 1
        state.position = 0
        state.partial = None
        checkpoint_every = self.recipe.run.checkpoint_every_epochs
        due = last_epoch or checkpoint_every <= 1 or (epoch + 1) % max(1, round(checkpoint_every)) == 0
        stop = self._stop_agreed()
        if due or stop:
            self._checkpoint(index, model, optimizer, scaler, schedule, None, mid_epoch=False)
        if world.is_main and (last_epoch or stop or time.monotonic() - self.plotted > PLOT_EVERY_SECONDS):
            self.run_dir.plot(state.metrics, state.lr_trace)
            self.plotted = time.monotonic()
        if stop and not (last_epoch and index == len(self.recipe.stages) - 1):
            raise StopRequested

    def validate(self, model) -> dict:
        """Validation loss, top-1 and top-5 of ``model`` on the validation split (this rank's shard, summed)."""
        loader = make_loader(
            self.val_split, max(self.recipe.stages[min(self.state.stage, len(self.recipe.stages) - 1)].batch_size, 64),
            shuffle=False, seed=self.recipe.run.seed, pipeline=self.eval_pipeline, device=self.device,
            drop_last=False, rank=self.world.rank, world_size=self.world.world_size, num_classes=self.num_classes,
        )
        was_training = {m: m.training for m in model.modules()}
        model.eval()
        stats = []
        try:
            with torch.no_grad():
                for images, labels in loader:
                    if self.channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    with self._autocast():
                        logits, _ = split_outputs(model(images), model)
                    loss = F.cross_entropy(logits.float(), labels)
                    stats.append(batch_stats(logits, labels, loss))
        finally:
            for m, mode in was_training.items():
                m.training = mode
        total = EpochTotals()
        total.add(sum_stats(stats))
        sums = distributed.all_sum([total.loss, total.correct1, total.correct5, float(total.images)], self.world, self.device)
        n = max(sums[3], 1.0)
        return {"loss": sums[0] / n, "top1": sums[1] / n, "top5": sums[2] / n, "images": int(sums[3])}

    def _checkpoint(self, index, model, optimizer, scaler, schedule, totals: EpochTotals | None, *, mid_epoch: bool) -> None:
        """Write a checkpoint of the current position (every process takes part; the main one writes)."""
        state, world = self.state, self.world
        state.schedule = schedule.state_dict()
        state.partial = asdict(totals) if (mid_epoch and totals is not None) else None
        rng = gather_rng(world)
        if world.is_main:
            payload = {
                "version": CHECKPOINT_VERSION,
                "state": asdict(state),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": rng,
                "world_size": world.world_size,
                "recipe": self.recipe.name,
            }
            name = checkpoint_name(index, state.stage_epoch) + (f"-b{state.position:06d}" if mid_epoch else "")
            self.run_dir.save_checkpoint(name, model, payload)
        distributed.barrier(world)

    def _summary(self, model) -> dict:
        state = self.state
        vals = [r for r in state.metrics if r.get("val_top1") is not None]
        last = state.metrics[-1] if state.metrics else {}
        return {
            "run": str(self.run_dir.path),
            "epochs": state.epochs_done,
            "steps": state.global_step,
            "best_val_top1": max((r["val_top1"] for r in vals), default=None),
            "final_val_top1": vals[-1]["val_top1"] if vals else None,
            "final_val_top5": vals[-1]["val_top5"] if vals else None,
            "train_seconds": round(sum(r["time"] for r in state.metrics), 2),
            "last": last,
            "best": str(self.run_dir.best),
            "checkpoint": str(self.run_dir.latest_checkpoint()),
        }


class HeadStack(nn.Module):
    """The head modules of a model as one module: ``forward(features)`` gives their logits, in order.

    Shares the heads' parameters with the model; training it on cached features trains them.
    """

    def __init__(self, model, paths):
        super().__init__()
        self.paths = list(paths)
        self.heads = nn.ModuleList([model.get_submodule(p) for p in self.paths])

    def forward(self, features: dict):
        return tuple(head(features[path]) for head, path in zip(self.heads, self.paths))


# -- small pieces the loop uses -------------------------------------------------------------------
def epoch_seed(seed: int, rank: int, stage: int, epoch: int) -> int:
    """The torch seed an epoch starts from (dropout and anything else drawing from the global RNG)."""
    return seed_for(seed, 7919, rank, stage, epoch)


def loader_from(loader, start: int, count: int):
    """Batches ``start .. count-1`` of the loader's current epoch (batches are seeded by number, so skipping is exact)."""
    if start == 0:
        for number, batch in enumerate(loader):
            if number >= count:
                return
            yield batch
        return
    order = loader.indices()
    chunks = [order[s:s + loader.batch_size] for s in range(0, len(order), loader.batch_size)]
    for number in range(start, min(count, len(chunks))):
        yield loader.batch(number, chunks[number])


def inputs_count(inputs) -> int:
    """Images in a batch of images or of cached features."""
    if isinstance(inputs, dict):
        return int(next(iter(inputs.values())).shape[0])
    return int(inputs.shape[0])


def gather_rng(world) -> list[dict]:
    """Every process's RNG states, in rank order."""
    mine = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
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
    np.random.set_state(mine["numpy"])
    random.setstate(mine["python"])


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
