"""What a dataset folder holds, as data: classes, images per split and class, image modes and
sizes, bad files and the decoded cache's state (``tinyzoo data info`` prints it)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from tinyzoo.console import progress
from tinyzoo.data.cache import cache_state, resolve_cache_dir
from tinyzoo.data.layout import read_header
from tinyzoo.data.sources import Dataset, open_dataset


def _modes_and_sizes(layout, files, split: str) -> tuple[Counter[str], Counter[str], int]:
    """Image modes and sizes of ``files`` from their headers, and how many could not be read.
    Parquet rows have no files to read headers from: their counts come with the cache."""
    modes: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    unreadable = 0
    if layout.kind == "parquet":
        return modes, sizes, unreadable
    for path in progress(files, desc=f"reading {split} headers", unit="img"):
        header = read_header(path)
        if header is None:
            unreadable += 1
            continue
        modes[header[0]] += 1
        sizes[f"{header[1][0]}x{header[1][1]}"] += 1
    return modes, sizes, unreadable


def _split_summary(layout: Dataset, root, split: str, cache_dir, per_class: dict[str, Counter[str]]) -> dict[str, Any]:
    files, labels = layout.split_files(split)
    for label in labels:
        if label >= 0:
            per_class[layout.wnids[label]][split] += 1
    cache = cache_state(root, split, cache_dir=cache_dir, skip_bad=True)
    if cache["state"] == "built":  # the manifest knows modes and sizes: no file is opened
        modes, sizes, unreadable = cache.pop("modes"), cache.pop("sizes"), cache.pop("skipped")
    else:
        modes, sizes, unreadable = _modes_and_sizes(layout, files, split)
    return {
        "layout": layout.split_layout(split),
        "images": len(files),
        "modes": dict(modes),
        "sizes": dict(sizes),
        "unreadable": unreadable,
        "boxes": len(layout.boxes(split)),
        "cache": cache,
    }


def dataset_summary(root: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None, skip_bad: bool = False) -> dict[str, Any]:
    """``root``'s classes, splits (images, modes, sizes, unreadable files, boxes, cache state),
    images per class and split, and what ``skip_bad`` left out.

    Modes and sizes come from the cache's manifest when the cache is up to date, else from
    reading every file's header.
    """
    layout = open_dataset(root, skip_bad=skip_bad)
    per_class: dict[str, Counter[str]] = {w: Counter() for w in layout.wnids}
    splits = {split: _split_summary(layout, root, split, cache_dir, per_class) for split in layout.splits}
    return {
        "root": str(layout.root),
        "kind": layout.kind,
        "classes": len(layout.wnids),
        "cache_dir": str(resolve_cache_dir(root, cache_dir)),
        "splits": splits,
        "per_class": [{"wnid": w, "name": layout.names[w], **{s: per_class[w][s] for s in splits if s != "test"}} for w in layout.wnids],
        "skipped": layout.skipped,
    }
