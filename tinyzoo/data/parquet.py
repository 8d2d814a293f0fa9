"""Datasets stored as Parquet files, as the Hugging Face Hub keeps them (``zh-plus/tiny-imagenet``).

A file holds an image column (the Hub's ``Image`` feature: a struct of JPEG/PNG ``bytes`` and
``path``) and a label column (a ``ClassLabel``: integers, and the class names in the dataset's
metadata). Files belong to splits by name, as on the Hub: ``<split>-00000-of-00002-<hash>.parquet``,
``<split>.parquet`` or ``<split>/<anything>.parquet``, in the folder or up to two levels below
(``data/`` usually); ``valid`` and ``validation`` are tinyzoo's ``val``.

The class names come from each file's schema metadata (the ``huggingface`` key that the
``datasets`` library writes), else from the ``dataset_info.features`` of the folder's README.md
YAML. They are the class order (``wnids``) of the training split; every other split's labels are
mapped to it by name, never by position. pyarrow, the ``hf`` extra, reads the files.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

from tinyzoo.data.layout import SPLITS, check_split, decode_items
from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.hub.cache import hub_snapshot

SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "val", "validation": "val", "val": "val", "test": "test"}
SHARD_RE = re.compile(r"-(\d{5})-of-(\d{5})")
PYARROW_HINT = "reading Parquet datasets needs pyarrow: pip install 'tinyzoo[hf]'"
PARQUET = "parquet"  # the dataset kind
GLOBS = ("*.parquet", "*/*.parquet", "*/*/*.parquet")


def require_pyarrow():
    """``pyarrow.parquet``, or a one-line error naming the extra that installs it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TinyzooError(PYARROW_HINT) from None
    return pq


def split_of(relative: Path) -> str | None:
    """The tinyzoo split a Parquet file belongs to by its name or folder, or None."""
    first = SHARD_RE.split(relative.stem)[0].split(".")[0]
    for name in (first, relative.stem, *reversed(relative.parts[:-1])):
        if name.lower() in SPLIT_ALIASES:
            return SPLIT_ALIASES[name.lower()]
    return None


def find_parquet_files(root: Path) -> dict[str, list[Path]]:
    """Split -> its Parquet files (sorted) under ``root``; files of no known split are left out."""
    found: dict[str, list[Path]] = {}
    for pattern in GLOBS:
        for path in root.glob(pattern):
            relative = path.relative_to(root)
            split = split_of(relative)
            if split is not None and not any(part.startswith(".") for part in relative.parts):
                found.setdefault(split, []).append(path)
    return {split: sorted(found[split]) for split in SPLITS if split in found}


def check_shards(split: str, files: list[Path]) -> None:
    """Every shard of a ``-00000-of-0000N`` set is present (an interrupted download leaves some out)."""
    shards = [SHARD_RE.search(p.name) for p in files]
    totals = {int(m.group(2)) for m in shards if m}
    for total in totals:
        have = {int(m.group(1)) for m in shards if m and int(m.group(2)) == total}
        missing = sorted(set(range(total)) - have)
        if missing:
            raise TinyzooError(
                f"{files[0].parent}: the {split} split has {len(have)} of its {total} Parquet shards (shard {missing[0]:05d} "
                "is missing); the copy is incomplete: fetch the dataset again"
            )


def hf_features(schema, path: Path) -> dict | None:
    """The ``datasets`` features stored in a Parquet schema's metadata, or None."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if raw is None:
        return None
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        raise TinyzooError(f"{path}: its 'huggingface' schema metadata does not parse as the datasets library writes it") from None
    return features if isinstance(features, dict) else None


def card_features(root: Path) -> dict | None:
    """The features of README.md's ``dataset_info`` YAML, in the schema metadata's shape, or None."""
    card = root / "README.md"
    if not card.is_file():
        return None
    from huggingface_hub import metadata_load

    try:
        info = (metadata_load(card) or {}).get("dataset_info")
    except Exception as exc:
        raise TinyzooError(f"{card}: its YAML front matter does not parse ({one_line(exc, 120)})") from None
    if isinstance(info, list):  # one entry per config: the default one, else the first
        info = next((c for c in info if c.get("config_name") in (None, "default")), info[0] if info else None)
    features: dict = {}
    for feature in (info or {}).get("features") or []:
        dtype = feature.get("dtype")
        if dtype == "image":
            features[feature["name"]] = {"_type": "Image"}
        elif isinstance(dtype, dict) and isinstance(dtype.get("class_label"), dict):
            names = dtype["class_label"].get("names") or {}
            ordered = [names[k] for k in sorted(names, key=int)] if isinstance(names, dict) else list(names)
            features[feature["name"]] = {"_type": "ClassLabel", "names": ordered}
    return features or None


def pick_columns(features: dict | None, schema, path: Path) -> tuple[str, str | None, list[str] | None]:
    """``(image column, label column or None, class names or None)`` of one file."""
    features = features or {}
    image = next((k for k, f in features.items() if isinstance(f, dict) and f.get("_type") == "Image"), None)
    image = image or next((n for n in ("image", "img") if n in schema.names), None)
    if image is None or image not in schema.names:
        raise TinyzooError(f"{path}: no image column; expected the Hub's Image feature (a struct of bytes and path), e.g. 'image'")
    label = next((k for k, f in features.items() if isinstance(f, dict) and f.get("_type") == "ClassLabel"), None)
    label = label or next((n for n in ("label", "labels") if n in schema.names), None)
    if label is not None and label not in schema.names:
        label = None
    names = features.get(label, {}).get("names") if label else None
    return image, label, [str(n) for n in names] if names else None


class ParquetDataset:
    """A folder of Parquet files (a Hub snapshot, or a copy of one), with :class:`TinyImageNet`'s interface.

    ``source`` is ``["hf", repo_id, commit]`` for a snapshot in the Hugging Face cache (the
    manifest then keys the cache by repo, commit, file names and sizes), else ``["parquet"]``
    (file names, sizes and mtimes). ``files[i]`` of a split is called ``<file>#<row>``.
    """

    kind = PARQUET

    def __init__(self, root: str | os.PathLike, *, skip_bad: bool = False):
        self.root = Path(root)
        self.skip_bad = skip_bad
        self.skipped: list[str] = []
        self._parquet = find_parquet_files(self.root)
        if not self._parquet:
            raise TinyzooError(f"{self.root}: no Parquet files named by split (train-*.parquet, valid-*.parquet, ...)")
        for split, files in self._parquet.items():
            check_shards(split, files)
        snapshot = hub_snapshot(self.root.resolve()) or hub_snapshot(self.root)
        self.source = ["hf", *snapshot] if snapshot else ["parquet"]
        self._columns = self._read_columns()
        self.wnids = self._class_order()
        self.names = self._read_words()
        self._scans: dict[str, tuple[list[Path], list[int], list[list]]] = {}

    # -- classes ------------------------------------------------------------------------
    def _read_columns(self) -> dict[Path, tuple[str, str | None, list[str] | None]]:
        pq = require_pyarrow()
        card = card_features(self.root)
        columns = {}
        for files in self._parquet.values():
            for path in files:
                try:
                    schema = pq.read_schema(path)
                except Exception as exc:
                    raise TinyzooError(f"{path}: not a readable Parquet file ({one_line(exc, 120)})") from None
                columns[path] = pick_columns(hf_features(schema, path) or card, schema, path)
        return columns

    def _class_order(self) -> list[str]:
        labelled = [s for s in ("train", "val") if s in self._parquet]
        for split in labelled:
            for path in self._parquet[split]:
                _, label, names = self._columns[path]
                if label is not None and not names:
                    raise TinyzooError(
                        f"{path}: column {label!r} has no class names (a ClassLabel's names in the dataset's metadata); "
                        "tinyzoo needs them to know which class each label is"
                    )
                if names:
                    if len(set(names)) != len(names):
                        raise TinyzooError(f"{path}: the class names of column {label!r} repeat a name; each class must appear once")
                    return names
        raise TinyzooError(f"{self.root}: no labelled Parquet file (a train or valid split with a ClassLabel column)")

    def _read_words(self) -> dict[str, str]:
        from tinyzoo.wordnet import wnid_names

        return {**{w: w for w in self.wnids}, **wnid_names(self.wnids)}

    # -- splits -------------------------------------------------------------------------
    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if s in self._parquet]

    def has_split(self, split: str) -> bool:
        check_split(split)
        return split in self._parquet

    def split_layout(self, split: str) -> str:
        check_split(split)
        return PARQUET

    def boxes(self, split: str) -> dict[str, tuple[int, int, int, int]]:
        return {}

    def split_files(self, split: str) -> tuple[list[Path], list[int]]:
        files, labels, _ = self.scan(split)
        return files, labels

    def scan(self, split: str) -> tuple[list[Path], list[int], list[list]]:
        """Names (``<file>#<row>``), labels in ``wnids`` order, and the manifest's entries."""
        check_split(split)
        if not self.has_split(split):
            raise TinyzooError(f"{self.root}: this dataset has no {split} split (it has: {', '.join(self.splits)})")
        if split not in self._scans:
            files: list[Path] = []
            labels: list[int] = []
            entries: list[list] = [self.source]
            for path in self._parquet[split]:
                found = self._labels(path, split)
                files += [Path(f"{path}#{row}") for row in range(len(found))]
                labels += found
                st = path.stat()
                relative = path.relative_to(self.root).as_posix()
                entries.append([relative, st.st_size] if self.source[0] == "hf" else [relative, st.st_size, st.st_mtime_ns])
            self._scans[split] = (files, labels, entries)
        files, labels, entries = self._scans[split]
        return list(files), list(labels), entries

    def _labels(self, path: Path, split: str) -> list[int]:
        """The file's labels as indices into ``wnids``, matched by class name."""
        pq = require_pyarrow()
        _, label, names = self._columns[path]
        if label is None:
            if split != "test":
                raise TinyzooError(f"{path}: no label column; the {split} split needs one (a ClassLabel)")
            return [-1] * pq.ParquetFile(path).metadata.num_rows
        values = pq.read_table(path, columns=[label]).column(0).to_pylist()
        if names is None:  # unlabelled test files may carry a label column of -1
            if split == "test":
                return [-1] * len(values)
            raise TinyzooError(f"{path}: column {label!r} has no class names; tinyzoo needs them to know which class each label is")
        index = {w: i for i, w in enumerate(self.wnids)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise TinyzooError(f"{path}: class {unknown[0]!r} is not one of the {len(self.wnids)} classes of the training split's metadata")
        table = [index[n] for n in names]
        out = []
        for row, value in enumerate(values):
            if value is None or value < 0:
                if split != "test":
                    raise TinyzooError(f"{path}#{row}: no label ({value}); every {split} image needs one")
                out.append(-1)
            elif value >= len(table):
                raise TinyzooError(f"{path}#{row}: label {value} is out of range; its metadata names {len(table)} classes")
            else:
                out.append(table[value])
        return out

    # -- pixels -------------------------------------------------------------------------
    def decode_tasks(self, split: str, files: list[Path], npy_path: Path, chunk: int) -> list[tuple]:
        """One :func:`decode_parquet_rows` job per run of whole row groups of about ``chunk`` rows."""
        pq = require_pyarrow()
        tasks = []
        start = 0
        for path in self._parquet[split]:
            meta = pq.ParquetFile(path).metadata
            groups: list[int] = []
            first = row = 0
            for g in range(meta.num_row_groups):
                groups.append(g)
                row += meta.row_group(g).num_rows
                if row - first >= chunk or g == meta.num_row_groups - 1:
                    args = (str(npy_path), start + first, str(path), self._columns[path][0], groups, first)
                    tasks.append((decode_parquet_rows, args, row - first))
                    groups, first = [], row
            start += meta.num_rows
        return tasks


def decode_parquet_rows(npy_path: str, start: int, path: str, column: str, groups: list[int], first_row: int) -> dict:
    """Decode the images of ``groups`` (row groups) of the Parquet file ``path`` into rows ``start...``.

    Runs in a worker process; returns :func:`decode_items`' tallies. A cell without bytes (an
    image stored by path alone) fails to decode and is reported with its row.
    """
    pq = require_pyarrow()
    cells = pq.ParquetFile(path).read_row_groups(groups, columns=[column]).column(0).to_pylist()
    items = []
    for i, cell in enumerate(cells):
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        items.append((io.BytesIO(data or b""), f"{path}#{first_row + i}"))
    return decode_items(npy_path, start, items)
