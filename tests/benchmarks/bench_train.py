"""Training speed: the trainer against a bare PyTorch loop, memory formats, and frozen-feature caching.

    python tests/benchmarks/bench_train.py [--threads 1] [--repeat 3] [--doc docs/benchmarks.md]

On a generated sample (``tinyzoo data sample``: 10 classes x 100 images), random weights:

1. images/s of :class:`tinyzoo.train.Trainer` (its training loop, as metrics.jsonl reports it)
   against a hand-written loop (same ``BatchLoader``, pipeline, model, batch and SGD), both in
   NCHW and both in channels_last, for a small network (quickstart's quarter-width ResNet-20)
   and a larger one (ResNet-18 at 56 px); and the bare loop in plain fp32 NCHW against
   channels_last and bf16 autocast on this CPU;
2. a head-only epoch on cached features against the same epoch with the frozen backbone run
   on every batch (ResNet-18, whole 64 px images, no augmentation).

Runs alternate and the best of ``--repeat`` counts (a shared machine only ever slows a run
down). Not collected by pytest. ``--doc`` replaces the ``## Training`` section of that file.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from doc_section import write_section

import tinyzoo.adapt as adapt
from tinyzoo.data.augment import Pipeline
from tinyzoo.data.cache import open_split
from tinyzoo.data.loader import BatchLoader
from tinyzoo.data.sample import write_sample
from tinyzoo.recipe import parse_recipe
from tinyzoo.train import Trainer, TrainSettings

AUGMENT = {"crop": 56, "flip": True, "normalize": "imagenet"}
MODELS = {
    "quarter-width ResNet-20 (quickstart)": ("resnet20_zhai", {"width": 0.25}, 64),
    "ResNet-18, stem keep, 56 px": ("resnet18", {}, 32),
}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def make_model(arch, options, classes=10, stem="keep"):
    return adapt.create(arch, classes=classes, weights="none", stem=stem, **options)


def recipe(arch, options, batch, steps, *, train="all", data=None, epochs=None, channels_last=True):
    stage = {"name": "bench", "train": train, "batch_size": batch, "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9}}
    stage.update({"epochs": epochs} if epochs else {"iterations": steps})
    return parse_recipe({
        "name": "bench", "model": {"arch": arch, "classes": 10, "weights": "none", "options": options},
        "data": data or {"train": AUGMENT, "eval": {"normalize": "imagenet"}},
        "stages": [stage], "run": {"keep_snapshots": 0, "channels_last": channels_last},
    }, source="bench")


def trainer_rate(sample, arch, options, batch, steps, threads, out, channels_last) -> float:
    """Images/s of the trainer's training loop (from metrics.jsonl) over ``steps`` steps."""
    settings = TrainSettings(data=sample, out=out, progress=False, threads=threads, log=lambda m: None, feature_cache="off")
    Trainer(recipe(arch, options, batch, steps, channels_last=channels_last), settings).run()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return sum(r["train_images"] for r in records) / sum(r["time"] for r in records)


def bare_rate(split, arch, options, batch, steps, *, channels_last=False, bf16=False) -> float:
    """Images/s of a hand-written loop: BatchLoader -> forward -> cross-entropy -> backward -> SGD step."""
    torch.manual_seed(0)
    model = make_model(arch, options)
    model.train()
    cfg = dict(AUGMENT, channels_last=channels_last)
    loader = BatchLoader(split, batch, shuffle=True, seed=0, pipeline=Pipeline.from_config(cfg), drop_last=True, num_classes=10)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    done, images, epoch = 0, 0, 0
    start = time.perf_counter()
    while done < steps:
        loader.set_epoch(epoch)
        for x, y in loader:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            images += x.shape[0]
            if done == steps:
                break
        epoch += 1
    return images / (time.perf_counter() - start)


def head_epochs(sample, threads, out_dir) -> dict:
    """Seconds of a head-only epoch of ResNet-18 with cached features and with full frozen forwards."""
    data = {"train": {"crop": 64, "flip": False, "normalize": "imagenet"}, "eval": {"normalize": "imagenet"}, "fixed_views": True}
    result = {}
    for mode in ("auto", "off"):
        logs: list[str] = []
        out = out_dir / f"head-{mode}-{time.monotonic_ns()}"
        settings = TrainSettings(data=sample, out=out, progress=False, threads=threads, log=logs.append, feature_cache=mode)
        start = time.perf_counter()
        Trainer(recipe("resnet18", {}, 64, 0, train="head", data=data, epochs=2), settings).run()
        wall = time.perf_counter() - start
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        cached = [line for line in logs if line.startswith("cached ")]
        result[mode] = {
            "epoch_seconds": min(r["time"] for r in records),
            "images": records[0]["train_images"],
            "wall": wall,
            "extract_seconds": float(re.search(r"in ([0-9.]+)s", cached[0]).group(1)) if cached else None,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--doc", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    sample = work / "sample"
    write_sample(sample, classes=10, per_class=100, seed=0)
    import os

    os.environ["TINYZOO_CACHE_DIR"] = str(work / "cache")
    split = open_split(sample, "train")

    rows = []
    for label, (arch, options, batch) in MODELS.items():
        best = dict.fromkeys(("trainer", "trainer_cl", "bare", "bare_cl", "bf16"), 0.0)
        for r in range(args.repeat):
            runs = {
                "trainer": lambda: trainer_rate(sample, arch, options, batch, args.steps, args.threads, work / f"t-{arch}-{r}", False),
                "bare": lambda: bare_rate(split, arch, options, batch, args.steps),
                "trainer_cl": lambda: trainer_rate(sample, arch, options, batch, args.steps, args.threads, work / f"tc-{arch}-{r}", True),
                "bare_cl": lambda: bare_rate(split, arch, options, batch, args.steps, channels_last=True),
                "bf16": lambda: bare_rate(split, arch, options, batch, args.steps, bf16=True),
            }
            for key, measure in runs.items():
                best[key] = max(best[key], measure())
            print(label, r, {k: round(v, 1) for k, v in best.items()}, flush=True)
        rows.append((label, batch, best))
    heads = head_epochs(sample, args.threads, work)
    print("head-only epochs", heads, flush=True)
    load_after = load_average()

    lines = [
        "## Training",
        "",
        f"`python tests/benchmarks/bench_train.py --threads {args.threads} --repeat {args.repeat} --steps {args.steps}` "
        f"({time.strftime('%Y-%m-%d')}): the 10-class sample (1,000 training images), random weights, random 56 crop + flip, "
        f"SGD with momentum, best of {args.repeat} alternating runs of {args.steps} steps. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores shared with other engineers' work, torch {torch.__version__}, {args.threads} torch thread(s); "
        f"load average before/after: {load_before} / {load_after}.",
        "",
        "| model | batch | bare loop, NCHW | Trainer, NCHW | ratio | bare loop, channels_last | Trainer, channels_last (default) | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, batch, best in rows:
        lines.append(
            f"| {label} | {batch} | {best['bare']:.0f} img/s | {best['trainer']:.0f} img/s | **{best['trainer'] / best['bare']:.2f}x** | "
            f"{best['bare_cl']:.0f} img/s | {best['trainer_cl']:.0f} img/s | **{best['trainer_cl'] / best['bare_cl']:.2f}x** |"
        )
    lines += [
        "",
        "Memory format and precision, against the plain fp32 NCHW bare loop:",
        "",
        "| model | bare, channels_last | Trainer default (channels_last) | bare, bf16 autocast (`run.amp = \"bf16\"`) |",
        "|---|---|---|---|",
    ]
    for label, _batch, best in rows:
        lines.append(
            f"| {label} | {best['bare_cl'] / best['bare']:.2f}x | **{best['trainer_cl'] / best['bare']:.2f}x** | {best['bf16'] / best['bare']:.2f}x |"
        )
    cached, full = heads["auto"], heads["off"]
    ratio = full["epoch_seconds"] / max(cached["epoch_seconds"], 1e-9)
    lines += [
        "",
        f"Head-only epoch, ResNet-18 (stem keep, whole 64 px images, no augmentation), {cached['images']} images, batch 64:",
        "",
        "| | epoch | one-time feature extraction | whole 2-epoch run (wall) |",
        "|---|---|---|---|",
        f"| frozen backbone forward every batch | {full['epoch_seconds']:.2f} s | - | {full['wall']:.1f} s |",
        f"| cached features | {cached['epoch_seconds'] * 1000:.1f} ms | {cached['extract_seconds']:.2f} s | {cached['wall']:.1f} s |",
        "",
        f"A head-only epoch on cached features is **{ratio:.0f}x** faster than one with the frozen backbone (goal: at least 20x).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.doc:
        write_section(args.doc, text)


if __name__ == "__main__":
    main()
