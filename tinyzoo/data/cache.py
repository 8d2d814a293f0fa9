"""The decoded cache: each split decoded once into a uint8 (N, 64, 64, 3) ``.npy``, memory-mapped after.

Per split the cache directory holds::

    <split>.npy            the pixels, RGB, NHWC, uint8
    <split>.stats.npz      per-pixel mean, channel mean/std, colour covariance eigenvectors
    <split>.manifest.json  written last: what the split was decoded from, labels, what was skipped

A split's cache is valid when its manifest matches a fresh scan of the dataset (same files,
sizes, mtimes, labels for image folders; the Hub repo, commit, file names and sizes for a Hub
dataset); otherwise it is rebuilt. Every file is written under a temporary
name and renamed, so a crash never leaves a half-written cache that looks valid.

Where the cache lives (first that applies):

1. ``cache_dir=`` / ``--cache-dir``: exactly that directory;
2. ``$TINYZOO_CACHE_DIR/<dataset-name>-<hash>``;
3. ``$XDG_CACHE_HOME/tinyzoo/data/<dataset-name>-<hash>`` (``~/.cache/...`` when unset),

where ``<hash>`` is taken from the dataset's absolute path. The default keeps the dataset
directory untouched, so a read-only or shared copy works. ``root`` may be anything ``--data``
accepts (:mod:`tinyzoo.data.sources`): a Tiny ImageNet folder, class folders, Parquet files
or ``hf:ORG/NAME[@REV]``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyzoo.atomic_files import atomic_path, sweep_temporaries, write_atomic
from tinyzoo.data.layout import ResizedImagesWarning
from tinyzoo.data.sources import Dataset, cache_name, open_dataset
from tinyzoo.errors import TinyzooError
from tinyzoo.specs import IMAGE_SIZE

CACHE_VERSION = 1
CHUNK = 256  # images per worker task: large enough to amortise IPC, small enough for a smooth bar
IN_PROCESS_BELOW = 2000  # smaller splits decode faster than two worker processes start


@dataclass
class SplitStats:
    """Pixel statistics of one split, on the 0..1 scale.

    ``pixel_mean`` (64, 64, 3) is Zhai's per-pixel mean image; ``channel_mean`` and
    ``channel_std`` are over every pixel; ``eigval`` (3,) descending and ``eigvec`` (3, 3),
    columns, are the principal components of the RGB covariance (AlexNet lighting).
    """

    pixel_mean: np.ndarray
    channel_mean: np.ndarray
    channel_std: np.ndarray
    eigval: np.ndarray
    eigvec: np.ndarray

    @classmethod
    def from_sums(cls, pixel_sum: np.ndarray, cross: np.ndarray, count: int) -> SplitStats:
        count = max(count, 1)
        pixel_mean = pixel_sum / count / 255.0
        channel_mean = pixel_mean.reshape(-1, 3).mean(axis=0)
        n_pixels = count * pixel_sum.shape[0] * pixel_sum.shape[1]
        cov = cross / n_pixels / 255.0**2 - np.outer(channel_mean, channel_mean)
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1]
        return cls(
            pixel_mean=pixel_mean.astype(np.float32),
            channel_mean=channel_mean.astype(np.float32),
            channel_std=np.sqrt(np.clip(np.diag(cov), 1e-12, None)).astype(np.float32),
            eigval=np.clip(eigval[order], 0, None).astype(np.float32),
            eigvec=eigvec[:, order].astype(np.float32),
        )


@dataclass
class DecodedSplit:
    """One split, decoded: what :func:`open_split` returns.

    ``images`` is a read-only memory-mapped uint8 array (N, 64, 64, 3) (RGB, NHWC);
    ``labels`` int64 (N,) index ``wnids`` (-1 for test); ``files[i]`` is the source of
    ``images[i]``. ``skipped`` holds the one-line messages of files left out by ``skip_bad``,
    ``resized`` the number of images that were not 64x64. ``built`` says whether this call
    decoded the split (rather than reusing the cache).
    """

    root: Path
    split: str
    images: np.ndarray
    labels: np.ndarray
    files: list[Path]
    wnids: list[str]
    names: dict[str, str]
    stats: SplitStats
    cache_path: Path
    boxes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    resized: int = 0
    modes: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    built: bool = False
    build_seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.wnids)


def resolve_cache_dir(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding ``root``'s cache (see the module docstring for the order)."""
    if cache_dir is not None:
        return Path(cache_dir)
    root = Path(root).resolve()
    base = os.environ.get("TINYZOO_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = os.path.join(xdg, "tinyzoo", "data")
    key = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    return Path(base) / f"{cache_name(root)}-{key}"


def manifest_path(cache: Path, split: str) -> Path:
    return cache / f"{split}.manifest.json"


def read_manifest(cache: Path, split: str) -> dict | None:
    """The split's manifest, or None if missing, unreadable or from another cache version."""
    try:
        manifest = json.loads(manifest_path(cache, split).read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("version") == CACHE_VERSION else None


def manifest_matches(manifest: dict | None, cache: Path, entries: list[list], layout: Dataset, split: str) -> bool:
    """Whether ``manifest`` describes exactly this scan and its arrays are on disk."""
    if manifest is None or manifest.get("entries") != entries or manifest.get("wnids") != layout.wnids:
        return False
    if manifest.get("layout_skipped") != layout.skipped:
        return False
    npy = cache / f"{split}.npy"
    return npy.is_file() and npy.stat().st_size == manifest.get("npy_bytes") and (cache / f"{split}.stats.npz").is_file()


def cache_state(root: str | os.PathLike, split: str, *, cache_dir: str | os.PathLike | None = None, skip_bad: bool = True) -> dict:
    """``{"state": "built" | "stale" | "missing", "path", "bytes", "images"}`` without building anything."""
    layout = open_dataset(root, skip_bad=skip_bad)
    cache = resolve_cache_dir(layout.root, cache_dir)
    manifest = read_manifest(cache, split)
    npy = cache / f"{split}.npy"
    state: dict[str, Any] = {"state": "missing", "path": str(npy), "bytes": None, "images": None}
    if manifest is None:
        return state
    _, _, entries = layout.scan(split)
    valid = manifest_matches(manifest, cache, entries, layout, split)
    state.update(state="built" if valid else "stale", bytes=manifest.get("npy_bytes"), images=manifest.get("count"))
    if valid:
        state.update(modes=manifest.get("modes", {}), sizes=manifest.get("sizes", {}), resized=manifest.get("resized", 0), skipped=len(manifest.get("skipped", [])))
    return state


@contextlib.contextmanager
def build_lock(cache: Path, split: str):
    """Hold an exclusive lock on the split's cache, so concurrent ranks build it once."""
    cache.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock on Windows: builders may race, each rename is still atomic
        yield
        return
    with open(cache / f"{split}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_split(
    root: str | os.PathLike,
    split: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    rebuild: bool = False,
) -> DecodedSplit:
    """The decoded ``split`` of the dataset ``root``, building its cache first if needed.

    ``root`` is anything ``--data`` accepts (see the module docstring). ``workers`` decoding
    processes (default 2; 0 decodes in this process); ``rebuild`` ignores an existing cache.
    A bad file raises a one-line :class:`TinyzooError`, or with ``skip_bad`` is left out and
    named in ``.skipped``. Images that were not 64x64 are resized and counted in one
    :class:`ResizedImagesWarning` when the cache is built.
    """
    layout = open_dataset(root, skip_bad=skip_bad)
    files, labels, entries = layout.scan(split)
    cache = resolve_cache_dir(layout.root, cache_dir)
    with build_lock(cache, split):
        sweep_temporaries(cache)  # what a killed build left (a .npy.tmp- of a whole split), whether or not this one builds
        manifest = None if rebuild else read_manifest(cache, split)
        built, seconds = False, 0.0
        if manifest is None or not manifest_matches(manifest, cache, entries, layout, split):
            start = time.perf_counter()
            manifest = build_split(layout, split, files, entries, cache, workers=workers)
            built, seconds = True, time.perf_counter() - start
    if manifest["skipped"] and not skip_bad:
        raise TinyzooError(manifest["skipped"][0])
    bad = set(manifest["bad_rows"])
    stats_file = np.load(cache / f"{split}.stats.npz", allow_pickle=False)
    kept = [i for i in range(len(files)) if i not in bad]
    return DecodedSplit(
        root=layout.root,
        split=split,
        images=np.load(cache / f"{split}.npy", mmap_mode="r", allow_pickle=False),
        labels=np.asarray([labels[i] for i in kept], dtype=np.int64),
        files=[files[i] for i in kept],
        wnids=list(layout.wnids),
        names=dict(layout.names),
        stats=SplitStats(**{k: stats_file[k] for k in stats_file.files}),
        cache_path=cache / f"{split}.npy",
        boxes=layout.boxes(split),
        skipped=list(manifest["skipped"]),
        resized=manifest["resized"],
        modes=manifest["modes"],
        sizes=manifest["sizes"],
        built=built,
        build_seconds=seconds,
    )


def build_split(layout: Dataset, split: str, files: list[Path], entries: list[list], cache: Path, *, workers: int | None = None) -> dict:
    """Decode ``files`` into ``cache/<split>.npy`` (+ stats, + manifest); returns the manifest written.

    Temporaries that a killed build left in ``cache`` are removed first (the caller holds the
    lock). A full disk raises a one-line error and leaves no temporary behind.
    """
    if not files:
        raise TinyzooError(f"{layout.root / split}: no images found; expected JPEG files in the Tiny ImageNet layout")
    sweep_temporaries(cache)
    try:
        return write_split(layout, split, files, entries, cache, workers)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        free = shutil.disk_usage(cache).free
        raise TinyzooError(
            f"no space left on device for the decoded cache in {cache} ({free / 1e6:.0f} MB free; {split} needs "
            f"{len(files) * IMAGE_SIZE * IMAGE_SIZE * 3 / 1e6:.1f} MB); nothing was kept: free some space or give --cache-dir"
        ) from None


def write_split(layout: Dataset, split: str, files: list[Path], entries: list[list], cache: Path, workers: int | None) -> dict:
    """:func:`build_split`'s work: the ``.npy``, its statistics, then the manifest."""
    n = len(files)
    with atomic_path(cache / f"{split}.npy", ".npy") as tmp:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, IMAGE_SIZE, IMAGE_SIZE, 3)).flush()
        reserve(tmp)
        results = decode_all(layout, split, files, tmp, 2 if workers is None else workers)
        errors = sorted(e for r in results for e in r["errors"])
        bad_rows = [row for row, _ in errors]
        if len(bad_rows) == n:
            raise TinyzooError(f"{layout.root / split}: every image failed to decode; first: {errors[0][1]}")
        if bad_rows:
            compact(tmp, bad_rows)
        stats = SplitStats.from_sums(
            sum(r["pixel_sum"] for r in results), sum(r["cross"] for r in results), sum(r["good"] for r in results)
        )
        with atomic_path(cache / f"{split}.stats.npz", ".npz") as stats_tmp:
            np.savez(stats_tmp, **stats.__dict__)
    modes: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for r in results:
        modes.update(r["modes"])
        sizes.update(r["sizes"])
    resized = sum(r["resized"] for r in results)
    manifest = {
        "version": CACHE_VERSION,
        "root": str(layout.root.resolve()),
        "split": split,
        "count": n - len(bad_rows),
        "npy_bytes": (cache / f"{split}.npy").stat().st_size,
        "wnids": layout.wnids,
        "entries": entries,
        "bad_rows": bad_rows,
        "skipped": layout.skipped + [message for _, message in errors],
        "layout_skipped": layout.skipped,
        "resized": resized,
        "modes": dict(modes),
        "sizes": dict(sizes),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_atomic(manifest_path(cache, split), json.dumps(manifest))
    if resized:
        warnings.warn(
            f"{resized} of {n} images in {layout.root / split} were not {IMAGE_SIZE}x{IMAGE_SIZE} and were resized to it",
            ResizedImagesWarning,
            stacklevel=4,
        )
    return manifest


def reserve(path: Path) -> None:
    """Allocate the file's blocks now, so that a full disk fails here with ENOSPC rather than
    later as a SIGBUS in a memory-mapped write."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise  # other errors: the file system cannot preallocate, and writes will tell


def decode_all(layout: Dataset, split: str, files: list[Path], npy_path: Path, workers: int) -> list[dict]:
    """Decode ``files`` into the ``.npy`` at ``npy_path`` (a progress bar); the chunks' results in order.

    The dataset says how (``layout.decode_tasks``). A bad file raises its one-line error
    unless the layout skips bad files.
    """
    from tinyzoo.console import progress

    n = len(files)
    tasks = layout.decode_tasks(split, files, npy_path, CHUNK)
    results: list[dict] = []
    with progress(total=n, desc=f"decoding {split}", unit="img") as bar:
        for result in run_tasks(tasks, workers if n >= IN_PROCESS_BELOW else 0):
            if result["errors"] and not layout.skip_bad:
                raise TinyzooError(result["errors"][0][1])
            results.append(result)
            bar.update(tasks[len(results) - 1][2])
    return results


def run_tasks(tasks: list[tuple], workers: int):
    """Yield the results of ``(function, args, count)`` tasks in order, from ``workers`` processes (0: here)."""
    if workers <= 0:
        for function, args, _ in tasks:
            yield function(*args)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may hold torch threads or a prefetch thread
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(function, *args) for function, args, _ in tasks]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def compact(path: Path, bad_rows: list[int]) -> None:
    """Rewrite the ``.npy`` at ``path`` without ``bad_rows`` (through a temporary beside it)."""
    images = np.load(path, mmap_mode="r", allow_pickle=False)
    keep = np.setdiff1d(np.arange(len(images)), np.asarray(bad_rows))
    with atomic_path(path, ".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(keep),) + images.shape[1:])
        for s in range(0, len(keep), 4096):
            out[s:s + 4096] = images[keep[s:s + 4096]]
        out.flush()
        del out
    del images
