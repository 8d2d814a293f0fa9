"""Projected wall time of a recipe on the full dataset, from measured step times.

Until the real dataset can be used on a GPU, a recipe's time is projected stage by stage:

- **steps**: the stage's micro-batches on 100,000 training images (``epochs`` or
  ``iterations`` x accumulation) times the measured time of one micro-batch: the recipe's
  model (random weights, its stem at that stage, its frozen parts frozen), batch size,
  augmentation, precision, memory format and compilation, fed by the trainer's loader;
- **frozen features**: a head-only stage the trainer would run on cached features costs one
  forward pass per image and view (measured), the head steps on features are left out;
- **validation**: 10,000 images per validation at the measured evaluation rate;
- **checkpoints**: per epoch one checkpoint (model + optimizer state) and at most two more
  model copies (best/ and a snapshot), timed once per model on the local disk;
- **warm-up**: the first steps of each stage (cuDNN autotuning, compilation), as measured.

``measure_cap`` shrinks the measured batch (the CPU dry run measures batches of 2 and scales
the time per image); the projection is then only as good as that scaling.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from gpu_speed import synchronize

TRAIN_IMAGES, VAL_IMAGES = 100_000, 10_000


@dataclass
class Measured:
    """Seconds per micro-batch (training), per image (evaluation forward), and per checkpoint pieces."""

    micro_batch: float
    warmup: float
    forward_per_image: float
    model_save: float
    optimizer_save: float
    batch: int


@dataclass
class StageProjection:
    name: str
    micro_batches: int
    batch: int
    cached_features: bool
    epochs: int
    validations: int
    measured_batch: int
    seconds: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def stage_models(recipe):
    """``(stage, stem)`` for every stage: the stem in force once the stage's adapter change is applied."""
    stem = recipe.model.stem
    for stage in recipe.stages:
        if stage.adapt and "stem" in stage.adapt:
            stem = stage.adapt["stem"]
        yield stage, stem


def build_model(recipe, stem: str, device: torch.device):
    import tinyzoo

    m = recipe.model
    torch.manual_seed(0)
    model = tinyzoo.create(m.arch, stem=stem, classes=m.classes, weights="none", head_init="random",
                           kernel_resize=m.kernel_resize, convolutionize=m.convolutionize, **dict(m.options))
    return model.to(device)


def pipelines(recipe, split, channels_last: bool):
    from tinyzoo.data.augment import Pipeline

    train_cfg, eval_cfg = dict(recipe.data.train), recipe.eval_augment_config()
    if channels_last:
        train_cfg.setdefault("channels_last", True)
        eval_cfg.setdefault("channels_last", True)
    return Pipeline.from_config(train_cfg, stats=split.stats), Pipeline.from_config(eval_cfg, stats=split.stats, train=False)


def with_classes(split, classes: int, cache: dict):
    """``split`` with its labels folded into ``classes`` (the quickstart has 10), made once per class count."""
    if split.num_classes <= classes:
        return split
    key = ("split", classes)
    if key not in cache:
        cache[key] = SimpleNamespace(**{**vars(split), "labels": split.labels % classes, "wnids": split.wnids[:classes], "num_classes": classes})
    return cache[key]


def uses_feature_cache(recipe, stage, model, train_pipeline) -> bool:
    """Whether the trainer would train this stage on cached features (its conditions, less the probe)."""
    from tinyzoo.train.features import fixed_views
    from tinyzoo.train.parts import model_parts, trainable_names

    parts = model_parts(model)
    head_only = bool(parts.head) and set(trainable_names(model, stage.train_patterns, parts)) == set(trainable_names(model, ["head"], parts))
    views = fixed_views(train_pipeline)
    return bool(head_only and stage.freeze_bn and views and (len(views) == 1 or recipe.data.fixed_views))


def logits_and_aux(output, model):
    aux = []
    if isinstance(output, (tuple, list)):
        output, aux = output[0], [t for t in output[1:] if isinstance(t, torch.Tensor)]
    stored = getattr(model, "aux_logits", None)
    if isinstance(stored, (tuple, list)):
        aux += [t for t in stored if isinstance(t, torch.Tensor)]
    return output, aux


def measure_stage(recipe, stage, model, split, device, *, amp, channels_last, compile_backend, cap, steps, cached) -> Measured:
    """Time the stage's micro-batches (unless its features are cached), an evaluation forward and a checkpoint's parts."""
    from tinyzoo.train.optim import build_optimizer
    from tinyzoo.train.parts import freeze, model_parts, trainable_names

    batch = min(stage.batch_size, cap) if cap else stage.batch_size
    freeze(model, trainable_names(model, stage.train_patterns, model_parts(model)))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    train_pipeline, eval_pipeline = pipelines(recipe, split, channels_last)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], stage.optimizer)
    warmup = per_micro = 0.0
    if not cached:
        micro = micro_step(recipe, stage, model, split, device, optimizer, train_pipeline, batch, amp, compile_backend)
        cycle = stage.accumulation
        warmup = timed(lambda: [micro(i) for i in range(cycle)], device)
        count = cycle * max(1, math.ceil(steps / cycle))
        per_micro = timed(lambda: [micro(i) for i in range(count)], device) / count * stage.batch_size / batch
    forward_per_image = eval_forward(model, split, eval_pipeline, device, amp, max(batch, min(64, cap or 64)), warm=cap is None)
    model_save, optimizer_save = checkpoint_times(model, optimizer)
    return Measured(per_micro, warmup, forward_per_image, model_save, optimizer_save, batch)


def micro_step(recipe, stage, model, split, device, optimizer, pipeline, batch, amp, compile_backend):
    """``micro(number)``: one forward/backward of the stage as the trainer runs it, stepping the optimizer every accumulation."""
    from tinyzoo.data.device_loader import make_loader
    from tinyzoo.train.parts import set_train_mode

    forward = torch.compile(model, backend=compile_backend) if recipe.run.compile else model
    loader = make_loader(split, batch, device=device, shuffle=True, pipeline=pipeline, drop_last=True, num_classes=recipe.model.classes)
    batches = iter(loader)
    set_train_mode(model, stage.freeze_bn)
    cycle = stage.accumulation

    def micro(number):
        nonlocal batches
        try:
            images, targets = next(batches)
        except StopIteration:  # a small split (the dry run) runs out of batches
            batches = iter(loader)
            images, targets = next(batches)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits, aux = logits_and_aux(forward(images), model)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=stage.label_smoothing)
        for extra in aux:
            loss = loss + stage.aux_loss_weight * F.cross_entropy(extra.float(), targets)
        (loss / cycle).backward()
        if (number + 1) % cycle == 0:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return micro


def timed(fn, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def eval_forward(model, split, pipeline, device, amp, batch: int, warm: bool = True) -> float:
    """Seconds per image of a validation forward (eval mode, no gradients), after one warm-up batch when ``warm``."""
    from tinyzoo.data.device_loader import make_loader

    was = model.training
    model.eval()
    loader = iter(make_loader(split, batch, device=device, pipeline=pipeline))
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            images = next(loader)[0]
            if warm:
                model(images)
            seconds = timed(lambda: model(images), device)
    finally:
        model.train(was)
    return seconds / len(images)


def checkpoint_times(model, optimizer) -> tuple[float, float]:
    """Seconds to write the model as an adapted-model directory, and the optimizer state, on local disk."""
    from tinyzoo.train.rundir import save_model_dir

    with tempfile.TemporaryDirectory(prefix="tinyzoo-projection-") as tmp:
        start = time.perf_counter()
        save_model_dir(model, Path(tmp) / "model")
        model_seconds = time.perf_counter() - start
        start = time.perf_counter()
        torch.save(optimizer.state_dict(), Path(tmp) / "trainer.pt")
        return model_seconds, time.perf_counter() - start


def project_stage(recipe, stage, measured: Measured, cached: bool, views: int) -> StageProjection:
    """The stage's seconds on the full dataset from what was measured."""
    steps_per_epoch = (TRAIN_IMAGES // stage.batch_size) // stage.accumulation
    steps = stage.iterations if stage.iterations is not None else max(1, round(stage.epochs * steps_per_epoch))
    epochs = math.ceil(steps / steps_per_epoch)
    every = max(1, round(recipe.evaluation.every_epochs))
    validations = sum(1 for e in range(epochs) if (e + 1) % every == 0 or e + 1 == epochs)
    checkpoint_every = max(1, round(recipe.run.checkpoint_every_epochs))
    checkpoints = sum(1 for e in range(epochs) if (e + 1) % checkpoint_every == 0 or e + 1 == epochs)
    micro = steps * stage.accumulation
    seconds = {
        "steps": 0.0 if cached else micro * measured.micro_batch,
        "feature_extraction": TRAIN_IMAGES * views * measured.forward_per_image if cached else 0.0,
        "validation": validations * VAL_IMAGES * measured.forward_per_image,
        "checkpoints": checkpoints * (measured.model_save + measured.optimizer_save) + validations * 2 * measured.model_save,
        "warmup": measured.warmup,
    }
    return StageProjection(stage.name, micro, stage.batch_size, cached, epochs, validations, measured.batch, seconds)


def project_recipe(recipe, split, device, *, compile_backend="inductor", cap=None, steps=10, cache=None) -> dict:
    """Every stage of ``recipe`` measured (reusing ``cache`` for identical stages) and projected."""
    from tinyzoo.train.features import fixed_views

    amp = torch.bfloat16 if recipe.run.amp == "bf16" or (recipe.run.amp == "auto" and device.type == "cuda") else (
        torch.float16 if recipe.run.amp == "fp16" else None)
    channels_last = bool(recipe.run.channels_last)
    cache = {} if cache is None else cache
    split = with_classes(split, recipe.model.classes, cache)
    rows = []
    for stage, stem in stage_models(recipe):
        model = build_model(recipe, stem, device)
        train_pipeline, _ = pipelines(recipe, split, channels_last)
        cached = uses_feature_cache(recipe, stage, model, train_pipeline)
        key = json.dumps([recipe.model.arch, recipe.model.options, stem, recipe.model.classes, stage.batch_size, stage.accumulation,
                          stage.train_patterns, recipe.data.train, str(amp), channels_last, recipe.run.compile, cached], sort_keys=True, default=str)
        if key not in cache:
            cache[key] = measure_stage(recipe, stage, model, split, device, amp=amp, channels_last=channels_last,
                                       compile_backend=compile_backend, cap=cap, steps=steps, cached=cached)
        views = len(fixed_views(train_pipeline) or [None])
        rows.append(project_stage(recipe, stage, cache[key], cached, views))
        del model
    return {"recipe": recipe.name, "seconds": round(sum(r.total for r in rows), 2),
            "stages": [dict(vars(r), seconds={k: round(v, 2) for k, v in r.seconds.items()}, total=round(r.total, 2)) for r in rows]}
