"""Data loading speed: tinyzoo's cache + batched augmentation against torchvision ImageFolder.

    python tests/benchmarks/bench_data.py [--classes 100] [--per-class 100] [--epochs 3] [--doc docs/benchmarks.md]

Writes a generated tree (classes x per-class JPEGs in the Tiny ImageNet layout) to a temporary
folder, then measures, for random 56 crop + flip + ImageNet normalisation in batches of 256:

- the one-time cache build (2 decoding processes) against one ImageFolder epoch;
- images per second delivered as float batches by ``BatchLoader`` (cache built) against
  ``ImageFolder`` + the same torchvision transforms through a ``DataLoader`` with 2 workers.

Not collected by pytest (its name does not start with ``test_``). ``--doc`` replaces the
``## Data loading`` section of that Markdown file with the results.
"""

from __future__ import annotations

from doc_section import write_section  # noqa: E402  (tests/benchmarks is sys.path[0])

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

BATCH = 256
CONFIG = {"crop": 56, "flip": True, "normalize": "imagenet"}


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def time_tinyzoo(root: Path, cache: Path, epochs: int) -> dict:
    import torch

    from tinyzoo.data.augment import Pipeline
    from tinyzoo.data.cache import open_split
    from tinyzoo.data.loader import BatchLoader

    start = time.perf_counter()
    split = open_split(root, "train", cache_dir=cache, workers=2)
    build = time.perf_counter() - start
    start = time.perf_counter()
    open_split(root, "train", cache_dir=cache)
    reopen = time.perf_counter() - start
    pipeline = Pipeline.from_config(CONFIG)
    default_threads = torch.get_num_threads()
    results = {"build_s": build, "reopen_s": reopen, "images": len(split), "default_threads": default_threads}
    # torch's default intra-op threads, then one: on a busy machine OpenMP's spinning threads cost more than they give
    for threads in (default_threads, 1):
        torch.set_num_threads(threads)
        for prefetch in (2, 0):
            loader = BatchLoader(split, BATCH, shuffle=True, seed=0, pipeline=pipeline, prefetch=prefetch)
            for images, labels in loader:  # warm-up epoch: page cache, allocator
                pass
            count, start = 0, time.perf_counter()
            for epoch in range(1, epochs + 1):
                loader.set_epoch(epoch)
                for images, labels in loader:
                    count += len(labels)
            results[f"threads{threads}_prefetch{prefetch}_img_s"] = count / (time.perf_counter() - start)
    torch.set_num_threads(default_threads)
    assert images.dtype == torch.float32 and images.shape[1:] == (3, 56, 56)
    return results


def time_imagefolder(root: Path, epochs: int) -> dict:
    import torch
    from torchvision import datasets, transforms

    from tinyzoo.specs import IMAGENET_MEAN, IMAGENET_STD

    transform = transforms.Compose([
        transforms.RandomCrop(56), transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    dataset = datasets.ImageFolder(str(root / "train"), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True)
    start = time.perf_counter()
    for images, labels in loader:  # the first epoch includes starting the workers
        pass
    first = time.perf_counter() - start
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, labels in loader:
            count += len(labels)
    assert images.dtype == torch.float32 and images.shape[1:] == (3, 56, 56)
    return {"first_epoch_s": first, "img_s": count / (time.perf_counter() - start), "images": len(dataset)}


def markdown(r: dict) -> str:
    t, f = r["tinyzoo"], r["imagefolder"]
    d = t["default_threads"]
    rows = [(f"tinyzoo `BatchLoader` (cache built), torch threads {d} (default), prefetch thread", t[f"threads{d}_prefetch2_img_s"]),
            (f"tinyzoo `BatchLoader` (cache built), torch threads {d} (default), no prefetch (the CPU default)", t[f"threads{d}_prefetch0_img_s"]),
            ("tinyzoo `BatchLoader` (cache built), `torch.set_num_threads(1)`, prefetch thread", t["threads1_prefetch2_img_s"]),
            ("tinyzoo `BatchLoader` (cache built), `torch.set_num_threads(1)`, no prefetch", t["threads1_prefetch0_img_s"])]
    table = "\n".join(f"| {name} | {value:,.0f} | {value / f['img_s']:.1f}x |" for name, value in rows)
    default_ratio = t[f"threads{d}_prefetch0_img_s"] / f["img_s"]  # on CPU the loader's default is no prefetch
    best_name, best = max(rows, key=lambda row: row[1])
    return f"""## Data loading

`python tests/benchmarks/bench_data.py` ({r['date']}): {t['images']:,} generated 64x64 JPEGs in the
Tiny ImageNet layout (`tinyzoo data sample`, {r['classes']} classes x {r['per_class']}); random 56 crop +
horizontal flip + ImageNet normalisation, float batches of {BATCH}, shuffled; steady state over
{r['epochs']} epochs after one warm-up epoch. Machine: {r['machine']}, {r['cpus']} CPU cores, torch
{r['torch']}; load average before/after: {r['load_before']} / {r['load_after']}{r['note']}.

| pipeline | images/s | vs ImageFolder |
|---|---|---|
| torchvision `ImageFolder` + transforms, `DataLoader(num_workers=2)` | {f['img_s']:,.0f} | 1.0x |
{table}

Ratio with torch's default threads and the loader's default prefetch: **{default_ratio:.1f}x**; best
configuration ({best_name.split(', ', 1)[1]}): **{best / f['img_s']:.1f}x** (goal: at least 10x).

| one-time cost | seconds |
|---|---|
| tinyzoo cache build (decode {t['images']:,} JPEGs, 2 processes) | {t['build_s']:.1f} |
| tinyzoo cache reopen (stat every file, check the manifest, memory-map) | {t['reopen_s']:.2f} |
| one ImageFolder epoch (first, including worker start) | {f['first_epoch_s']:.1f} |

The cache build costs about {t['build_s'] / max(f['first_epoch_s'], 1e-9):.1f} ImageFolder epochs and is paid once per
dataset; every later epoch reads the memory-mapped uint8 array.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    parser.add_argument("--doc", type=Path, default=None, help="Markdown file whose '## Data loading' section to rewrite")
    parser.add_argument("--note", default="", help="text appended to the machine line (e.g. what else was running)")
    args = parser.parse_args()

    import torch

    from tinyzoo.data.sample import write_sample

    work = Path(tempfile.mkdtemp(prefix="tinyzoo-bench-"))
    try:
        root = work / "tiny"
        load_before = load_average()
        start = time.perf_counter()
        write_sample(root, classes=args.classes, per_class=args.per_class, val_per_class=1, test_per_class=1)
        print(f"generated {args.classes * args.per_class} training JPEGs in {time.perf_counter() - start:.1f} s", flush=True)
        imagefolder = time_imagefolder(root, args.epochs)
        print(f"ImageFolder: {json.dumps(imagefolder)}", flush=True)
        tinyzoo = time_tinyzoo(root, work / "cache", args.epochs)
        print(f"tinyzoo: {json.dumps(tinyzoo)}", flush=True)
        results = {
            "date": time.strftime("%Y-%m-%d"), "classes": args.classes, "per_class": args.per_class, "epochs": args.epochs,
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "load_before": load_before, "load_after": load_average(), "note": f"; {args.note}" if args.note else "",
            "tinyzoo": tinyzoo, "imagefolder": imagefolder,
        }
        section = markdown(results)
        print(section)
        if args.doc:
            write_section(args.doc, section)
            print(f"wrote the '## Data loading' section of {args.doc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
