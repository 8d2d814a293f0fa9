"""Data loading speed: tinyzoo's cache + batched augmentation against torchvision ImageFolder, idle and under load.

    python tests/benchmarks/bench_data.py [--classes 100] [--per-class 100] [--epochs 3] [--busy 1] [--doc docs/benchmarks.md]

Writes a generated tree (classes x per-class JPEGs in the Tiny ImageNet layout) to a temporary
folder, builds the decoded cache once, then measures images per second delivered as float
batches (random 56 crop + flip + ImageNet normalisation, batches of 256, shuffled, 3 epochs after
a warm-up epoch) by:

- ``ImageFolder`` + the same torchvision transforms through a ``DataLoader`` with 2 workers;
- ``BatchLoader`` with torch's 2 threads and OpenMP's default wait policy, augmenting on both
  threads (tinyzoo before its thread rules), and on one (tinyzoo now, in a Python program that
  imported torch itself, so the wait policy is OpenMP's);
- the same two with ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep instead of spinning); the
  second is what the ``tinyzoo`` command runs;
- one torch thread for everything.

Each measurement is a fresh process (the wait policy is read when torch loads), first on the
machine as it is, then with ``--busy`` extra processes spinning on the CPU (a light load: another
engineer's job waking up); they are stopped when the measurement ends, whatever happens. Not
collected by pytest. ``--doc`` replaces the ``## Data loading`` section of that Markdown file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from doc_section import write_section

BATCH = 256
CONFIG = {"crop": 56, "flip": True, "normalize": "imagenet"}
# name -> (torch threads, threads while augmenting, OMP_WAIT_POLICY or None for OpenMP's default)
LOADERS = {
    "`BatchLoader`, 2 threads, OpenMP's default wait, augmenting on 2 threads (before)": (2, 2, None),
    "`BatchLoader`, 2 threads, OpenMP's default wait, augmenting on 1 thread (a program that imports torch itself)": (2, 1, None),
    "`BatchLoader`, 2 threads, passive wait, augmenting on 2 threads": (2, 2, "PASSIVE"),
    "`BatchLoader`, 2 threads, passive wait, augmenting on 1 thread (the `tinyzoo` command)": (2, 1, "PASSIVE"),
    "`BatchLoader`, 1 thread": (1, 1, None),
}
DEFAULT = "`BatchLoader`, 2 threads, passive wait, augmenting on 1 thread (the `tinyzoo` command)"
IMAGEFOLDER = "torchvision `ImageFolder` + transforms, `DataLoader(num_workers=2)`"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def worker_tinyzoo(args) -> dict:
    """In a fresh process: the loader's steady-state images/s with the given thread settings."""
    import torch

    from tinyzoo import cpu_threads
    from tinyzoo.data.augment import Pipeline
    from tinyzoo.data.cache import open_split
    from tinyzoo.data.loader import BatchLoader

    torch.set_num_threads(args.threads)
    cpu_threads.AUGMENT_THREADS = args.augment_threads
    split = open_split(args.root, "train", cache_dir=args.cache)
    loader = BatchLoader(split, BATCH, shuffle=True, seed=0, pipeline=Pipeline.from_config(CONFIG))
    for _ in loader:  # warm-up epoch: page cache, allocator
        pass
    count, start = 0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loader.set_epoch(epoch)
        for images, labels in loader:  # noqa: B007 (the last batch is checked below)
            count += len(labels)
    assert images.dtype == torch.float32 and images.shape[1:] == (3, 56, 56)
    return {"img_s": count / (time.perf_counter() - start)}


def worker_imagefolder(args) -> dict:
    import torch
    from torchvision import datasets, transforms

    from tinyzoo.specs import IMAGENET_MEAN, IMAGENET_STD

    transform = transforms.Compose([
        transforms.RandomCrop(56), transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    dataset = datasets.ImageFolder(str(Path(args.root) / "train"), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True)
    start = time.perf_counter()
    for _batch in loader:  # the first epoch includes starting the workers
        pass
    first = time.perf_counter() - start
    count, start = 0, time.perf_counter()
    for _ in range(args.epochs):
        for images, labels in loader:  # noqa: B007 (the last batch is checked below)
            count += len(labels)
    assert images.dtype == torch.float32 and images.shape[1:] == (3, 56, 56)
    return {"img_s": count / (time.perf_counter() - start), "first_epoch_s": first}


def measure(kind: str, root: Path, cache: Path, epochs: int, threads: int = 1, augment_threads: int = 1, wait: str | None = None) -> dict:
    """Run one worker in a fresh interpreter; returns its JSON."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if wait:
        env["OMP_WAIT_POLICY"] = wait
    command = [sys.executable, __file__, "--worker", kind, "--root", str(root), "--cache", str(cache), "--epochs", str(epochs),
               "--threads", str(threads), "--augment-threads", str(augment_threads)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def busy(processes: int):
    """``processes`` Python processes spinning on the CPU for the duration of the block, then stopped."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(1.0 if processes else 0.0)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()


def condition(root: Path, cache: Path, epochs: int, processes: int, repeat: int) -> dict:
    """Every configuration ``repeat`` times in alternation, with ``processes`` spinners running; the best of each counts.

    Other work on a shared machine only ever slows a run down, so the best run is the one least disturbed.
    """
    with busy(processes):
        before = load_average()
        rows: dict = {}
        for _ in range(repeat):
            runs = {IMAGEFOLDER: measure("imagefolder", root, cache, max(1, epochs // 3))}
            for name, (threads, augment, wait) in LOADERS.items():
                runs[name] = measure("tinyzoo", root, cache, epochs, threads, augment, wait)
            for name, run in runs.items():
                if name not in rows or run["img_s"] > rows[name]["img_s"]:
                    rows[name] = run
                print(f"  {name}: {run['img_s']:,.0f} img/s", flush=True)
        return {"busy": processes, "load_before": before, "load_after": load_average(), "rows": rows}


def markdown(r: dict) -> str:
    idle, loaded = r["conditions"]
    table = []
    for name in [IMAGEFOLDER, *LOADERS]:
        a, b = idle["rows"][name]["img_s"], loaded["rows"][name]["img_s"]
        ra, rb = a / idle["rows"][IMAGEFOLDER]["img_s"], b / loaded["rows"][IMAGEFOLDER]["img_s"]
        table.append(f"| {name} | {a:,.0f} | {ra:.1f}x | {b:,.0f} | {rb:.1f}x | {b / a:.2f} |")
    ratio = loaded["rows"][DEFAULT]["img_s"] / loaded["rows"][IMAGEFOLDER]["img_s"]
    return f"""## Data loading

`python tests/benchmarks/bench_data.py --busy {loaded['busy']} --repeat {r['repeat']}` ({r['date']}): {r['images']:,} generated 64x64 JPEGs in the
Tiny ImageNet layout (`tinyzoo data sample`, {r['classes']} classes x {r['per_class']}); random 56 crop +
horizontal flip + ImageNet normalisation, float batches of {BATCH}, shuffled; steady state over
{r['epochs']} epochs (ImageFolder: {max(1, r['epochs'] // 3)}) after one warm-up epoch, each configuration in a fresh
process, the best of {r['repeat']} alternating rounds. Machine: {r['machine']},
{r['cpus']} CPU cores shared with other engineers' work, torch {r['torch']}. "As it is": load average
{idle['load_before']} before, {idle['load_after']} after; "+{loaded['busy']} busy": with {loaded['busy']} extra process(es)
spinning on the CPU, load average {loaded['load_before']} before, {loaded['load_after']} after.

| pipeline | images/s, as it is | vs ImageFolder | images/s, +{loaded['busy']} busy | vs ImageFolder | kept under load |
|---|---|---|---|---|---|
{chr(10).join(table)}

With the extra load the `tinyzoo` command's loader is **{ratio:.1f}x** ImageFolder (goal: at least 15x).

Reading the table: the first row is the loader before tinyzoo's thread rules, two OpenMP threads
spinning at every operation's barrier; each of the rules alone (passive waiting, or one thread
while augmenting) removes most of that loss, and tinyzoo applies both (docs/training.md, "Devices
and speed"), because a Python program that imports torch itself keeps OpenMP's spinning default.
On this shared machine other engineers' work moves single runs by up to 2x even as the best of
{r['repeat']}: rows within about a third of each other are not told apart here.

| one-time cost | seconds |
|---|---|
| tinyzoo cache build (decode {r['images']:,} JPEGs, 2 processes) | {r['build_s']:.1f} |
| tinyzoo cache reopen (stat every file, check the manifest, memory-map) | {r['reopen_s']:.2f} |
| one ImageFolder epoch (first, including worker start; as it is) | {idle['rows'][IMAGEFOLDER]['first_epoch_s']:.1f} |

The cache build is paid once per dataset; every later epoch reads the memory-mapped uint8 array.
"""


def build_cache(root: Path, cache: Path) -> dict:
    from tinyzoo.data.cache import open_split

    start = time.perf_counter()
    split = open_split(root, "train", cache_dir=cache, workers=2)
    build = time.perf_counter() - start
    start = time.perf_counter()
    open_split(root, "train", cache_dir=cache)
    return {"build_s": build, "reopen_s": time.perf_counter() - start, "images": len(split)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    parser.add_argument("--busy", type=int, default=1, help="spinning processes for the loaded measurement")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds per condition; the best of each configuration counts")
    parser.add_argument("--doc", type=Path, default=None, help="Markdown file whose '## Data loading' section to rewrite")
    parser.add_argument("--worker", choices=["tinyzoo", "imagefolder"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--augment-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps((worker_tinyzoo if args.worker == "tinyzoo" else worker_imagefolder)(args)))
        return

    import torch

    from tinyzoo.data.sample import write_sample

    work = Path(tempfile.mkdtemp(prefix="tinyzoo-bench-"))
    try:
        root, cache = work / "tiny", work / "cache"
        write_sample(root, classes=args.classes, per_class=args.per_class, val_per_class=1, test_per_class=1)
        results = {"date": time.strftime("%Y-%m-%d"), "classes": args.classes, "per_class": args.per_class, "epochs": args.epochs, "repeat": args.repeat,
                   "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
                   **build_cache(root, cache), "conditions": []}
        for processes in (0, args.busy):
            print(f"with {processes} busy process(es):", flush=True)
            results["conditions"].append(condition(root, cache, args.epochs, processes, args.repeat))
        print(json.dumps(results))
        section = markdown(results)
        print(section)
        if args.doc:
            write_section(args.doc, section)
            print(f"wrote the '## Data loading' section of {args.doc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
