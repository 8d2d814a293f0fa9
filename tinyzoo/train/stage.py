"""One stage of a run: the objects it trains with, and what one micro-batch goes through.

:func:`open_stage` builds a :class:`StageRun` once per stage: the trainable parameters (the rest
frozen), the optimizer and its gradient scaler, the learning-rate schedule, the batch loader,
the length in optimizer steps, and the module a micro-batch runs through: the network
(compiled when ``run.compile``, wrapped for data parallelism), or, when only the head trains on
fixed inputs, the heads alone on features cached once (:mod:`tinyzoo.train.features`).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyzoo.console import progress
from tinyzoo.data.device_loader import make_loader
from tinyzoo.data.loader import BatchLoader
from tinyzoo.errors import TinyzooError
from tinyzoo.train.features import (
    cache_batches,
    cacheable,
    estimated_bytes,
    extract_everywhere,
    fixed_views,
    memory_budget,
    render_view,
)
from tinyzoo.train.optim import LrSchedule, build_optimizer
from tinyzoo.train.parts import ModelParts, freeze, set_train_mode, trainable_names


@dataclass
class StageRun:
    """Stage ``index`` of the recipe (``spec``) as it trains ``model``.

    ``runner`` is what a micro-batch calls (the compiled, data-parallel network, or a
    :class:`HeadStack` on ``cache``); ``epochs`` is the number of (possibly partial) epochs
    of ``steps_per_epoch`` optimizer steps that make ``total_steps``.
    """

    index: int
    spec: Any
    model: Any
    parts: ModelParts
    trainable: list[str]
    optimizer: Any
    scaler: Any
    schedule: LrSchedule
    loader: BatchLoader  # or its DeviceLoader subclass
    steps_per_epoch: int
    total_steps: int
    epochs: int
    cache: Any = None
    runner: Any = None

    @property
    def accumulation(self) -> int:
        """Micro-batches per optimizer step."""
        return self.spec.accumulation

    def steps_in(self, epoch: int) -> int:
        """Optimizer steps in epoch ``epoch`` of the stage (the last may be partial)."""
        return min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)

    def ends_step(self, micro: int) -> bool:
        """Whether micro-batch ``micro`` of an epoch is the last of its optimizer step."""
        return (micro + 1) % self.accumulation == 0

    def batches(self, epoch: int, start: int, view_seed: int):
        """Micro-batches ``start ..`` of epoch ``epoch`` (the loader's epoch already set)."""
        count = self.steps_in(epoch) * self.accumulation
        if self.cache is not None:
            return cache_batches(self.cache, self.loader, count, start, view_seed=view_seed)
        return loader_from(self.loader, start, count)

    def accumulating(self, last_of_step: bool, world):
        """Data parallelism's ``no_sync`` for the micro-batches before the last of a step."""
        return contextlib.nullcontext() if last_of_step or not world.distributed else self.runner.no_sync()

    def forward(self, inputs, runtime) -> tuple[Any, list]:
        """``(logits, auxiliary logits)`` of a micro-batch (images, or cached head inputs)."""
        if self.cache is not None:
            outputs = self.runner(inputs)
            return outputs[0], list(outputs[1:])
        return split_outputs(self.runner(runtime.inputs(inputs)), self.model)

    def loss(self, logits, aux: list, targets):
        """Cross-entropy with label smoothing, plus the weighted auxiliary classifiers' losses."""
        smoothing = self.spec.label_smoothing
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=smoothing)
        for extra in aux:
            loss = loss + self.spec.aux_loss_weight * F.cross_entropy(extra.float(), targets, label_smoothing=smoothing)
        return loss

    def describe(self, stages: int) -> str:
        """The log line that opens the stage."""
        params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return (f"stage {self.index + 1}/{stages} {self.spec.name!r}: trains {len(self.trainable)} tensors "
                f"({params:,} parameters), {self.total_steps} steps of {self.accumulation * self.spec.batch_size} images"
                + (", on cached features" if self.cache is not None else ""))


def open_stage(run, index: int, model, parts: ModelParts, saved: dict | None) -> StageRun:
    """Stage ``index`` of ``run`` (the :class:`~tinyzoo.train.trainer.Trainer`: its recipe, settings,
    data, runtime and state) set up on ``model``; optimizer and scaler states from ``saved`` (a
    checkpoint's) when resuming. A stage the state has finished comes back without runner."""
    spec, runtime = run.recipe.stages[index], run.runtime
    names = trainable_names(model, spec.train_patterns, parts)
    freeze(model, names)
    runtime.prepare(model)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], spec.optimizer)
    loader = stage_loader(run, spec)
    steps_per_epoch, total_steps, epochs = stage_plan(spec, len(loader))
    # Iteration stages (Zhai) give step_size in optimizer steps, as Caffe does; epoch stages in epochs.
    schedule = LrSchedule(spec.schedule, spec.optimizer.lr, total_steps, steps_per_epoch,
                          step_size_unit="steps" if spec.iterations is not None else "epochs")
    stage = StageRun(index, spec, model, parts, names, optimizer, runtime.grad_scaler(), schedule, loader,
                     steps_per_epoch, total_steps, epochs)
    if run.state.stage_epoch >= stage.epochs:
        return stage  # resumed from the checkpoint that ended this stage
    set_train_mode(model, spec.freeze_bn)
    head_only = parts.head and set(names) == set(trainable_names(model, ["head"], parts))
    stage.cache = feature_cache(run, stage) if head_only and spec.freeze_bn else None
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        if stage.scaler is not None and saved.get("scaler"):
            stage.scaler.load_state_dict(saved["scaler"])
    if run.state.schedule:
        stage.schedule.load_state_dict(run.state.schedule)
    if stage.cache is not None:
        stage.runner = runtime.wrap(HeadStack(model, parts.head))
    else:
        stage.runner = runtime.wrap(torch.compile(model) if run.recipe.run.compile else model)
    return stage


def stage_loader(run, spec, *, resident: bool | None = None) -> BatchLoader:
    """The training batches of a stage of ``spec`` (this process's shard): GPU-resident on CUDA
    where the split fits (:func:`~tinyzoo.data.device_loader.make_loader`); ``resident=False``
    for a loader that only counts batches."""
    runtime = run.runtime
    return make_loader(
        run.data.train_split, spec.batch_size, shuffle=True, seed=run.recipe.run.seed, pipeline=run.data.train_pipeline,
        device=runtime.device, drop_last=True, rank=runtime.world.rank, world_size=runtime.world.world_size,
        num_classes=run.data.num_classes, resident=resident,
    )


def check_stage_length(run, index: int) -> None:
    """Raise the one-line error of :func:`stage_plan` should stage ``index`` have no whole optimizer step."""
    spec = run.recipe.stages[index]
    batches = len(stage_loader(run, spec, resident=False))
    if batches < 1:
        images, world = len(run.data.train_split), run.runtime.world.world_size
        raise TinyzooError(
            f"stages[{index}].batch_size is {spec.batch_size} but the training split of {run.settings.data} has {images} images"
            + (f" ({images // world} per process)" if world > 1 else "") + "; lower batch_size"
        )
    stage_plan(spec, batches)


def stage_plan(spec, loader_batches: int) -> tuple[int, int, int]:
    """``(steps per epoch, total steps, epochs)`` of a stage whose epoch has ``loader_batches`` batches."""
    accumulation = spec.accumulation
    steps_per_epoch = loader_batches // accumulation
    if steps_per_epoch < 1:
        raise TinyzooError(
            f"stage {spec.name!r}: an epoch has {loader_batches} batches of {spec.batch_size}, fewer than the "
            f"{accumulation} accumulated per optimizer step; lower batch_size or effective_batch"
        )
    total = spec.iterations if spec.iterations is not None else max(1, round(spec.epochs * steps_per_epoch))
    return steps_per_epoch, total, math.ceil(total / steps_per_epoch)


def feature_cache(run, stage: StageRun):
    """Cached head inputs for a head-only stage, or None when they cannot (or should not) be cached."""
    pipeline, split, runtime = run.data.train_pipeline, run.data.train_split, run.runtime
    views = fixed_views(pipeline) if run.settings.feature_cache != "off" else None
    if views is None:
        if run.settings.feature_cache != "off" and run.recipe.data.fixed_views:
            run.log("data.fixed_views is set but the training pipeline's views are not a finite set: no feature cache")
        return None
    if len(views) > 1 and not run.recipe.data.fixed_views:
        return None  # several views: the recipe must say that sampling them uniformly is what it wants
    model, heads = stage.model, stage.parts.head
    sample = torch.from_numpy(np.array(split.images[: min(8, len(split))])).to(runtime.device)
    probe = render_view(pipeline, sample, views[0])
    forward = training_forward(model, runtime)
    if not cacheable(model, heads, forward, probe):
        run.log("frozen features are not deterministic (dropout or BatchNorm in training mode before the head): no feature cache")
        return None
    need = estimated_bytes(model, heads, forward, probe, len(split), len(views))
    if need > memory_budget(runtime.device):
        run.log(f"a feature cache would take {need / 2**30:.1f} GiB, more than allowed: full forwards instead")
        return None
    bar = Bar(run.runtime.world.is_main and run.settings.progress, -(-len(split) // runtime.world.world_size) * len(views),
              "caching features", leave=False)
    start = time.perf_counter()
    with bar:
        cache = extract_everywhere(model, heads, split.images, split.labels, pipeline, views, forward=forward,
                                   device=runtime.device, world=runtime.world, batch_size=max(stage.spec.batch_size, 64),
                                   progress=lambda k: bar.update(k * len(views)))
    run.log(f"cached {len(views)} view(s) of {len(cache)} images ({cache.nbytes() / 2**20:.1f} MiB) in {time.perf_counter() - start:.1f}s")
    return cache


def training_forward(model, runtime):
    """``forward(images)`` as training runs it: memory format and autocast."""

    def forward(images):
        with runtime.autocast():
            return model(runtime.inputs(images))

    return forward


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


class Bar:
    """A progress bar on the main process when progress is shown; nothing otherwise."""

    def __init__(self, shown: bool, total: int, desc: str, *, leave: bool = True, done: int = 0):
        self.bar = progress(total=total, desc=desc, unit="img", leave=leave, initial=done) if shown else None

    def update(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def counting(self, on_scores):
        """``on_scores(scores, labels)`` that also counts the batch's images on the bar."""

        def count(scores, labels) -> None:
            on_scores(scores, labels)
            self.update(int(labels.shape[0]))

        return count

    def show(self, totals) -> None:
        """The epoch's running loss and accuracy after the rate (tqdm's own images/s)."""
        if self.bar is not None and totals.images:
            self.bar.set_postfix(loss=f"{totals.loss / totals.images:.3f}", acc=f"{totals.correct1 / totals.images:.3f}")

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


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
