"""What a ``--data`` value names, and the dataset object that reads it.

``--data`` (and :func:`tinyzoo.data.cache.open_split`) accepts:

- ``hf:ORG/NAME[@REV]``: a dataset of Parquet files on the Hugging Face Hub, brought into the
  Hugging Face cache (:mod:`tinyzoo.data.hf_dataset`) and read from its snapshot folder;
- a folder in the Tiny ImageNet layout, recognised by its ``wnids.txt`` (:class:`TinyImageNet`);
- a folder of class folders, ``train/<class>/*.jpg`` and ``val/<class>/*.jpg`` (:class:`ClassFolders`);
- a folder of Parquet files, ``data/train-*.parquet`` as the Hub keeps them (:class:`ParquetDataset`).

Each kind is read by an object with the interface of :class:`Dataset`, which is all the
decoded cache asks of a dataset. Nothing here imports numpy, PIL or pyarrow at module level.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from tinyzoo.data.parquet import PARQUET
from tinyzoo.errors import TinyzooError
from tinyzoo.hub.cache import hub_snapshot

HUB_PREFIX = "hf:"
TINY_IMAGENET = "tiny-imagenet"
CLASS_FOLDERS = "class folders"


class Dataset(Protocol):
    """What every dataset kind offers (:class:`TinyImageNet` is the reference).

    ``scan(split)`` gives ``(files, labels, entries)``: what ``files[i]`` is called, its label
    (an index into ``wnids``; -1 unlabelled) and the entries the cache's manifest compares to
    decide whether a cache is current. ``decode_tasks(split, files, npy_path, chunk)`` gives
    ``(function, args, count)`` jobs that decode ``count`` images each into the ``.npy``.
    """

    root: Path
    kind: str
    wnids: list[str]
    names: dict[str, str]
    skip_bad: bool
    skipped: list[str]

    @property
    def splits(self) -> list[str]: ...

    def has_split(self, split: str) -> bool: ...

    def split_layout(self, split: str) -> str: ...

    def split_files(self, split: str) -> tuple[list[Path], list[int]]: ...

    def scan(self, split: str) -> tuple[list[Path], list[int], list[list]]: ...

    def decode_tasks(self, split: str, files: list[Path], npy_path: Path, chunk: int) -> list[tuple]: ...

    def boxes(self, split: str) -> dict[str, tuple[int, int, int, int]]: ...


def is_hub_value(value: str | os.PathLike) -> bool:
    """Whether ``value`` names a Hub dataset (``hf:ORG/NAME[@REV]``)."""
    return os.fspath(value).startswith(HUB_PREFIX)


def local_root(value: str | os.PathLike, *, offline: bool | None = None) -> Path:
    """The local folder ``value`` names: a Hub dataset's snapshot folder (fetched first) or the path itself."""
    if is_hub_value(value):
        from tinyzoo.data.hf_dataset import fetch

        return fetch(os.fspath(value), offline=offline)
    return Path(value)


def open_dataset(value: str | os.PathLike, *, skip_bad: bool = False, offline: bool | None = None) -> Dataset:
    """The dataset ``value`` names (see the module docstring), its layout detected."""
    from tinyzoo.data.layout import ClassFolders, TinyImageNet

    root = local_root(value, offline=offline)
    kind = detect_layout(root)
    if kind == PARQUET:
        from tinyzoo.data.parquet import ParquetDataset

        return ParquetDataset(root, skip_bad=skip_bad)
    return (TinyImageNet if kind == TINY_IMAGENET else ClassFolders)(root, skip_bad=skip_bad)


def detect_layout(root: Path) -> str:
    """``tiny-imagenet``, ``class folders`` or ``parquet``; a one-line error saying what is missing otherwise.

    ``wnids.txt`` means Tiny ImageNet; a ``train/`` (or ``val/``) folder holding class folders
    with images means class folders; ``.parquet`` files in the folder or up to two levels below
    mean Parquet.
    """
    from tinyzoo.data.layout import class_folder_names, has_images
    from tinyzoo.data.parquet import find_parquet_files

    if not root.is_dir():
        raise TinyzooError(f"{root}: no such directory; --data takes a dataset folder (Tiny ImageNet, class folders or Parquet files) or hf:ORG/NAME")
    if (root / "wnids.txt").is_file():
        return TINY_IMAGENET
    if any(class_folder_names(root / split) for split in ("train", "val")):
        return CLASS_FOLDERS
    if find_parquet_files(root):
        return PARQUET
    inside = [p for p in sorted(root.iterdir()) if (p / "wnids.txt").is_file()]
    if inside:
        raise TinyzooError(f"{root}: not a dataset itself, but {inside[0]} is (it holds wnids.txt): give that folder")
    train = root / "train"
    if not train.is_dir():
        raise TinyzooError(
            f"{root}: not a dataset tinyzoo reads: no wnids.txt (Tiny ImageNet), no train/ folder of class folders "
            "(train/<class>/*.jpg) and no .parquet files"
        )
    if has_images(train):
        raise TinyzooError(f"{train}: images lie directly in it; put each class's images in a folder of its own (train/<class>/*.jpg)")
    raise TinyzooError(f"{train}: no class folders with images (.jpg, .jpeg, .png) in it; expected train/<class>/*.jpg, one folder per class")


def cache_name(root: Path) -> str:
    """The readable part of a dataset's cache folder: the folder's name, ``ORG--NAME`` for a Hub snapshot."""
    snapshot = hub_snapshot(root)
    if snapshot is not None:
        return snapshot[0].replace("/", "--")
    return root.name or "dataset"
