"""WordNet ids: the ImageNet-1k class order, their names, and reading ``wnids.txt`` files.

Torch-free. The 1000 ImageNet-1k synsets in class-index order and their lemmas come from
the text files timm ships (``timm/data/_info/``); they are read as plain files, without
importing timm (which would import torch).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Iterable
from pathlib import Path

from tinyzoo.errors import TinyzooError

WNID_RE = re.compile(r"n\d{8}")
IMAGENET_SYNSETS = "imagenet_synsets.txt"
IMAGENET_LEMMAS = "imagenet_synset_to_lemma.txt"


def _timm_info_file(name: str) -> Path:
    spec = importlib.util.find_spec("timm")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise TinyzooError(f"timm is not installed; tinyzoo reads the ImageNet class list from timm/data/_info/{name}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info" / name
    if not path.is_file():
        raise TinyzooError(f"{path} not found: this timm has no ImageNet class list; install timm>=1.0")
    return path


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (index i is logit i of a 1000-way head)."""
    path = _timm_info_file(IMAGENET_SYNSETS)
    wnids = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if len(wnids) != 1000:
        raise TinyzooError(f"{path} lists {len(wnids)} synsets; expected the 1000 of ImageNet-1k")
    return wnids


@functools.cache
def _imagenet_positions() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}


@functools.cache
def _lemmas() -> dict[str, str]:
    path = _timm_info_file(IMAGENET_LEMMAS)
    names = {}
    for line in path.read_text().splitlines():
        wnid, _, lemma = line.partition("\t")
        if lemma:
            names[wnid.strip()] = lemma.strip()
    return names


def missing_from_imagenet(wnids: Iterable[str]) -> list[str]:
    """The ids of ``wnids`` that are not ImageNet-1k classes, in order."""
    positions = _imagenet_positions()
    return [w for w in wnids if w not in positions]


def imagenet_indices(wnids: Iterable[str]) -> list[int]:
    """The ImageNet-1k class index of each WordNet id, in the given order.

    Raises :class:`TinyzooError` naming the first id that is not an ImageNet-1k class.
    """
    wnids = list(wnids)
    missing = missing_from_imagenet(wnids)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise TinyzooError(f"WordNet id {missing[0]!r}{more} is not an ImageNet-1k class; head_init='wnid' needs every class in ImageNet-1k, use head_init='random'")
    positions = _imagenet_positions()
    return [positions[w] for w in wnids]


def wnid_names(wnids: Iterable[str]) -> dict[str, str]:
    """``wnid -> "lemma, lemma"`` for the ids that ImageNet-1k names (others are left out)."""
    lemmas = _lemmas()
    return {w: lemmas[w] for w in wnids if w in lemmas}


def validate_wnids(wnids: Iterable[str], origin: str = "wnids") -> list[str]:
    """``wnids`` as a list, checked: each matches ``n########``, none repeats, at least one."""
    wnids = [str(w).strip() for w in wnids]
    seen: dict[str, int] = {}
    for i, wnid in enumerate(wnids, 1):
        if not WNID_RE.fullmatch(wnid):
            raise TinyzooError(f"{origin}: entry {i} {wnid!r} is not a WordNet id; expected 'n' and 8 digits, e.g. n01443537")
        if wnid in seen:
            raise TinyzooError(f"{origin}: {wnid} appears twice (entries {seen[wnid]} and {i}); each class must be listed once")
        seen[wnid] = i
    if not wnids:
        raise TinyzooError(f"{origin} lists no WordNet ids; expected one per line, e.g. n01443537")
    return wnids


def validate_classes(classes: Iterable[str], origin: str = "wnids") -> list[str]:
    """A dataset's class ids, checked: WordNet ids when any of them looks like one (then every
    one must be, as :func:`validate_wnids` checks), else names of a dataset's own classes (class
    folders), each non-empty and listed once."""
    classes = [str(c).strip() for c in classes]
    if any(WNID_RE.fullmatch(c) for c in classes):
        return validate_wnids(classes, origin)
    seen: dict[str, int] = {}
    for i, name in enumerate(classes, 1):
        if not name:
            raise TinyzooError(f"{origin}: entry {i} is empty; every class needs a name")
        if name in seen:
            raise TinyzooError(f"{origin}: {name!r} appears twice (entries {seen[name]} and {i}); each class must be listed once")
        seen[name] = i
    if not classes:
        raise TinyzooError(f"{origin} lists no classes")
    return classes


def read_wnids(path: str | os.PathLike) -> list[str]:
    """The WordNet ids of a ``wnids.txt`` file (one per line, blank lines ignored), checked.

    A line may carry more columns after a tab or space (as ``words.txt`` does); the first
    column is the id. Errors name the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TinyzooError(f"wnids file {path} does not exist; expected a wnids.txt with one WordNet id per line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TinyzooError(f"wnids file {path} cannot be read ({type(exc).__name__}); expected a text file with one WordNet id per line") from None
    wnids = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if not WNID_RE.fullmatch(fields[0]):
            raise TinyzooError(f"{path}:{number}: {fields[0][:40]!r} is not a WordNet id; expected 'n' and 8 digits, e.g. n01443537")
        wnids.append(fields[0])
    return validate_wnids(wnids, str(path))
