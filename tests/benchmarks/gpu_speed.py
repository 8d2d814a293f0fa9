"""Throughput on generated data of the full dataset's size: data only, training steps, evaluation.

Used by ``tests/gpu/check.py`` (one GPU, or the CPU at tiny sizes with ``--cpu``). Every
function takes a ``device`` and returns plain numbers; times are wall-clock with the device
synchronised at both ends, so queued GPU work is counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

KIM_AUGMENT = {"crop": 56, "flip": True, "jitter": 0.4, "lighting": 0.1}
CROP_FLIP = {"crop": 56, "flip": True}
CUTMIX = {"crop": 56, "flip": True, "cutmix": 1.0, "mix_prob": 0.5}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generated_split(images: int, classes: int = 200, seed: int = 0):
    """A split-shaped namespace of random uint8 64x64 images (as DecodedSplit has: images, labels, wnids, stats)."""
    from tinyzoo.data.cache import SplitStats

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (images, 64, 64, 3), dtype=np.uint8)
    sample = pixels[: min(images, 1000)].astype(np.float64)
    flat = sample.reshape(-1, 3)
    stats = SplitStats.from_sums(sample.sum(0), flat.T @ flat, len(sample))
    labels = rng.integers(0, classes, images)
    return SimpleNamespace(images=pixels, labels=labels, wnids=[f"n{i:08d}" for i in range(classes)], stats=stats,
                           num_classes=classes, files=[f"{i}.JPEG" for i in range(images)], names={})


def data_rate(split, device: torch.device, batch: int, config: dict, *, resident: bool = True, max_batches: int | None = None) -> dict:
    """Images/s delivered as augmented float batches (one epoch, after one warm-up batch)."""
    from tinyzoo.data.augment import Pipeline
    from tinyzoo.data.device_loader import make_loader

    start = time.perf_counter()
    pipeline = Pipeline.from_config(config, stats=split.stats)
    loader = make_loader(split, batch, device=device, resident=resident, shuffle=True, seed=0, pipeline=pipeline, drop_last=True)
    setup = time.perf_counter() - start
    loader.set_epoch(0)
    next(iter(loader))
    synchronize(device)
    count, start = 0, time.perf_counter()
    loader.set_epoch(1)
    for number, (_images, targets) in enumerate(loader):
        count += len(targets)
        if max_batches is not None and number + 1 >= max_batches:
            break
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"images_per_s": count / seconds, "images": count, "seconds": seconds, "setup_seconds": setup,
            "loader": type(loader).__name__, "batch": batch}


@dataclass
class TrainSetup:
    """One way to train ResNet-18 (small stem, 56 px): precision, memory format, compilation."""

    name: str
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False


def resnet18_small(device: torch.device, classes: int = 200):
    import tinyzoo

    torch.manual_seed(0)
    return tinyzoo.create("resnet18", stem="small", classes=classes, weights="none", head_init="random").to(device)


def train_step_fn(model, setup: TrainSetup, device: torch.device, compile_backend: str = "inductor"):
    """``step(images, targets)`` as the trainer runs one: autocast, cross-entropy, backward, SGD, top-k hits."""
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-5)
    forward = torch.compile(model, backend=compile_backend) if setup.compile else model

    def step(images, targets):
        if setup.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=setup.bf16):
            logits = forward(images)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=0.1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        labels = targets if targets.dim() == 1 else targets.argmax(1)
        return (logits.detach().topk(5, dim=1).indices == labels[:, None]).sum()

    return step


def train_rate(split, device: torch.device, setup: TrainSetup, batch: int, steps: int, *, warmup: int = 3,
               compile_backend: str = "inductor", crop: int = 56) -> dict:
    """Images/s of training steps fed by the resident loader (Kim's augmentation) and by one fixed batch.

    ``data_wait`` is how much slower the loader-fed steps were: 0 means the network never waited for data.
    """
    from tinyzoo.data.augment import Pipeline
    from tinyzoo.data.device_loader import make_loader

    model = resnet18_small(device, split.num_classes).train()
    step = train_step_fn(model, setup, device, compile_backend)
    pipeline = Pipeline.from_config(dict(KIM_AUGMENT, crop=crop, channels_last=setup.channels_last))
    loader = make_loader(split, batch, device=device, resident=True, shuffle=True, pipeline=pipeline, drop_last=True, num_classes=split.num_classes)
    batches = iter(loader)
    start = time.perf_counter()
    for _ in range(warmup):  # compilation and cuDNN's autotuning happen here
        step(*next(batches))
    synchronize(device)
    warmup_seconds = time.perf_counter() - start
    fed = timed_steps(step, lambda: next(batches), steps, device)
    fixed_batch = next(batches)
    fixed = timed_steps(step, lambda: fixed_batch, steps, device)
    return {"setup": setup.name, "batch": batch, "crop": crop, "steps": steps, "warmup_seconds": warmup_seconds,
            "images_per_s": batch * steps / fed, "fixed_batch_images_per_s": batch * steps / fixed,
            "data_wait": max(0.0, 1 - fixed / fed)}


def timed_steps(step, next_batch, steps: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(*next_batch())
    synchronize(device)
    return time.perf_counter() - start


def eval_rate(split, device: torch.device, views: str = "12crop", *, images: int | None = None, crop: int = 56) -> dict:
    """Images/s of ``tinyzoo eval``'s loop (views cut on the device, combined by softmax) for ResNet-18, small stem."""
    from tinyzoo.evaluate.predictions import run_model
    from tinyzoo.preprocess import Preprocess

    model = resnet18_small(device, split.num_classes)
    pixels = split.images if images is None else split.images[:images]
    preprocess = Preprocess(crop=crop)  # ImageNet's mean and std
    run_model(model, pixels[:64], views=views, preprocess=preprocess, device=device, desc="warm-up")
    synchronize(device)
    start = time.perf_counter()
    probs = run_model(model, pixels, views=views, preprocess=preprocess, device=device, desc=f"eval {views}")
    synchronize(device)
    seconds = time.perf_counter() - start
    assert probs.shape == (len(pixels), split.num_classes) and np.isfinite(probs).all()
    return {"views": views, "crop": crop, "images": len(pixels), "seconds": seconds, "images_per_s": len(pixels) / seconds}
