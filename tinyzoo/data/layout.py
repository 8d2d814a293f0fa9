"""Reading a dataset in the ``tiny-imagenet-200`` layout: class ids, file lists, labels, boxes, pixels.

The layout (see docs/data.md)::

    wnids.txt                              class order, one wnid a line
    words.txt                              wnid TAB names (optional)
    train/<wnid>/images/*.JPEG             (or train/<wnid>/*.JPEG)
    train/<wnid>/<wnid>_boxes.txt          file TAB x0 TAB y0 TAB x1 TAB y1 (optional)
    val/images/*.JPEG + val/val_annotations.txt   file TAB wnid TAB x0 TAB y0 TAB x1 TAB y1
      or val/<wnid>/images/*.JPEG, val/<wnid>/*.JPEG  (validation already sorted into classes)
    test/images/*.JPEG                     no labels

:class:`ClassFolders` reads the common class-folder layout (``train/<class>/*.jpg``,
``val/<class>/*.jpg``, any image size) with the same interface; the classes are folder names.

Nothing here imports torch; :func:`read_image` and :func:`decode_chunk` are what the cache's
worker processes run.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.specs import IMAGE_SIZE

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
ANNOTATIONS = "val/val_annotations.txt"


class ResizedImagesWarning(UserWarning):
    """Some images were not 64x64 and were resized; the message says how many."""


class TinyImageNet:
    """A dataset directory in the Tiny ImageNet layout.

    ``wnids`` is the class order (label ``i`` is ``wnids[i]``), ``names`` maps each wnid to
    its words (the wnid itself where words.txt has none). Problems raise a one-line
    :class:`TinyzooError`; with ``skip_bad=True`` the offending file, folder or annotation
    line is left out instead and its message appended to ``skipped``.

    :meth:`scan` and :meth:`decode_tasks` are what the decoded cache asks of every dataset
    kind (see :mod:`tinyzoo.data.sources`).
    """

    kind = "tiny-imagenet"

    def __init__(self, root: str | os.PathLike, *, skip_bad: bool = False):
        self.root = Path(root)
        self.skip_bad = skip_bad
        self.skipped: list[str] = []
        if not self.root.is_dir():
            raise TinyzooError(f"{self.root}: no such directory; expected a Tiny ImageNet folder holding wnids.txt, train/ and val/")
        self.wnids = self._read_wnids()
        self._index = {w: i for i, w in enumerate(self.wnids)}
        self.names = self._read_words()
        self._files: dict[str, tuple[list[Path], list[int]]] = {}
        self._boxes: dict[str, dict[str, tuple[int, int, int, int]]] = {}

    # --- class ids -----------------------------------------------------------------

    def _read_wnids(self) -> list[str]:
        path = self.root / "wnids.txt"
        if not path.is_file():
            raise TinyzooError(f"{path}: file not found; a Tiny ImageNet directory lists its class ids (wnids) there, one per line")
        wnids: list[str] = []
        seen: set[str] = set()
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            wnid = line.strip()
            if not wnid:
                continue
            if wnid in seen:
                raise TinyzooError(f"{path}:{lineno}: {wnid} is listed twice; each class id must appear once")
            seen.add(wnid)
            wnids.append(wnid)
        if not wnids:
            raise TinyzooError(f"{path}: no class ids in it; expected one wnid (e.g. n01443537) a line")
        return wnids

    def _read_words(self) -> dict[str, str]:
        names = {w: w for w in self.wnids}
        path = self.root / "words.txt"
        if path.is_file():
            # words.txt of the real dataset names all 82k WordNet ids; keep only ours
            for line in path.read_text(errors="replace").splitlines():
                wnid, _, words = line.partition("\t")
                if wnid in names and words.strip():
                    names[wnid] = words.strip()
        return names

    # --- splits ----------------------------------------------------------------------

    def has_split(self, split: str) -> bool:
        """Whether the directory holds ``split`` (``train``, ``val`` or ``test``)."""
        check_split(split)
        if split == "test":
            return self._test_folder().is_dir()
        return (self.root / split).is_dir()

    def _test_folder(self) -> Path:
        return self.root / "test" / "images"

    @property
    def splits(self) -> list[str]:
        """The splits present, in the order train, val, test."""
        return [s for s in SPLITS if self.has_split(s)]

    def split_layout(self, split: str) -> str:
        """How ``split`` is stored: ``class folders``, ``annotations`` or ``unlabelled``."""
        check_split(split)
        if split == "test":
            return "unlabelled"
        if split == "val" and ((self.root / ANNOTATIONS).is_file() or (self.root / "val" / "images").is_dir()):
            return "annotations"
        return "class folders"

    def split_files(self, split: str) -> tuple[list[Path], list[int]]:
        """``(files, labels)`` for ``split``: paths under ``root``, labels index ``wnids`` (-1 for test).

        Train lists classes in wnids.txt order, each class's files sorted by name; val
        follows val_annotations.txt (or class order when sorted into folders); test is
        sorted by name.
        """
        check_split(split)
        if split not in self._files:
            if not self.has_split(split):
                where = "test/images" if split == "test" else f"{split}/"
                raise TinyzooError(f"{self.root / where}: not found; this dataset has no {split} split (it has: {', '.join(self.splits) or 'none'})")
            if split == "test":
                files = self._images(self._test_folder())
                self._files[split] = (files, [-1] * len(files))
            elif self.split_layout(split) == "annotations":
                self._files[split] = self._read_annotated_val()
            else:
                self._files[split] = self._read_class_folders(split)
        files, labels = self._files[split]
        return list(files), list(labels)

    def boxes(self, split: str) -> dict[str, tuple[int, int, int, int]]:
        """File name -> bounding box ``(x0, y0, x1, y1)`` from the boxes/annotation files (may be empty)."""
        self.split_files(split)
        return dict(self._boxes.get(split, {}))

    def scan(self, split: str) -> tuple[list[Path], list[int], list[list]]:
        """``(files, labels, entries)``: the split's files and labels, and one ``[relative path,
        size, mtime_ns, label]`` per file, what the cache's manifest compares."""
        files, labels = self.split_files(split)
        entries = []
        for path, label in zip(files, labels):
            try:
                st = path.stat()
            except OSError:
                entries.append([path.relative_to(self.root).as_posix(), -1, -1, label])
                continue
            entries.append([path.relative_to(self.root).as_posix(), st.st_size, st.st_mtime_ns, label])
        return files, labels, entries

    def decode_tasks(self, split: str, files: list[Path], npy_path: Path, chunk: int) -> list[tuple]:
        """``(function, args, count)`` per chunk of ``files``: :func:`decode_chunk` jobs for worker processes."""
        return [(decode_chunk, (str(npy_path), s, [str(p) for p in files[s:s + chunk]]), len(files[s:s + chunk])) for s in range(0, len(files), chunk)]

    def _bad(self, message: str) -> None:
        if not self.skip_bad:
            raise TinyzooError(message)
        self.skipped.append(message)

    def _images(self, folder: Path) -> list[Path]:
        """The images in ``folder``; each broken link among them is a bad file (:meth:`_bad`)."""
        images, problems = scan_images(folder)
        for message in problems:
            self._bad(message)
        return images

    def _empty_folder(self, folder: Path, wnid: str, split: str) -> None:
        """A class folder without images: a class that cannot be learned (or measured) is a mistake."""
        self._bad(f"{folder}: no images in it (.jpeg, .jpg, .png); wnids.txt lists class {wnid}, so {split}/ needs its images")

    def _unknown_folder(self, folder: Path) -> str | None:
        """The message for a folder in a split that names no class (None: leave it be)."""
        return f"{folder}: folder is not a class listed in {self.root / 'wnids.txt'}"

    def _missing_folder(self, folder: Path, wnid: str, split: str) -> None:
        self._bad(f"{folder}: folder not found; wnids.txt lists class {wnid} but {split}/ has no folder for it")

    def _read_class_folders(self, split: str) -> tuple[list[Path], list[int]]:
        base = self.root / split
        for name in subfolder_names(base):
            if name not in self._index and not (split == "val" and name == "images"):
                message = self._unknown_folder(base / name)
                if message:
                    self._bad(message)
        files: list[Path] = []
        labels: list[int] = []
        boxes: dict[str, tuple[int, int, int, int]] = {}
        for label, wnid in enumerate(self.wnids):
            folder = base / wnid
            if not folder.is_dir():
                self._missing_folder(folder, wnid, split)
                continue
            images = folder / "images"
            found = self._images(images if images.is_dir() else folder)
            if not found:
                self._empty_folder(folder, wnid, split)
            files += found
            labels += [label] * len(found)
            boxes.update(read_boxes(folder / f"{wnid}_boxes.txt"))
        self._boxes[split] = boxes
        return files, labels

    def _read_annotated_val(self) -> tuple[list[Path], list[int]]:
        ann = self.root / ANNOTATIONS
        images = self.root / "val" / "images"
        if not ann.is_file():
            raise TinyzooError(f"{ann}: file not found; val/images needs it to label its images (or sort val/ into one folder per wnid)")
        on_disk = {p.name: p for p in self._images(images)} if images.is_dir() else {}
        files: list[Path] = []
        labels: list[int] = []
        boxes: dict[str, tuple[int, int, int, int]] = {}
        listed: set[str] = set()
        for lineno, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            if len(fields) < 2:
                self._bad(f"{ann}:{lineno}: expected 'FILE<TAB>WNID<TAB>x0<TAB>y0<TAB>x1<TAB>y1', got {line.strip()!r}")
                continue
            name, wnid = fields[0].strip(), fields[1].strip()
            if wnid not in self._index:
                self._bad(f"{ann}:{lineno}: unknown wnid {wnid!r} for {name}; it is not in wnids.txt")
                continue
            if name not in on_disk:
                self._bad(f"{ann}:{lineno}: {name} not found in {images}")
                continue
            if name in listed:
                self._bad(f"{ann}:{lineno}: {name} is annotated twice")
                continue
            listed.add(name)
            files.append(on_disk[name])
            labels.append(self._index[wnid])
            box = parse_box(fields[2:6])
            if box is not None:
                boxes[name] = box
        for name in sorted(set(on_disk) - listed):
            self._bad(f"{on_disk[name]}: not listed in {ann}; every validation image needs a line there")
        self._boxes["val"] = boxes
        return files, labels


class ClassFolders(TinyImageNet):
    """A dataset in the common class-folder layout: ``train/<class>/*.jpg``, ``val/<class>/*.jpg``.

    The classes are ``train/``'s folders that hold images, sorted by name (``val/``'s when
    there is no ``train/``); a folder may keep its images in an ``images/`` subfolder, and
    ``val/`` may lack a class. A class named by a WordNet id (``n01443537``) keeps it as its
    wnid and takes its words from words.txt or tinyzoo's WordNet table, so a pretrained
    ImageNet head still applies; other names are their own words. Test images, unlabelled, are
    read from ``test/images/`` or ``test/``. Images of any size are resized for the cache.
    """

    kind = "class folders"

    def _read_wnids(self) -> list[str]:
        base = self.root / ("train" if (self.root / "train").is_dir() else "val")
        classes = class_folder_names(base)
        if not classes:
            raise TinyzooError(f"{base}: no class folders with images in it; expected {base.name}/<class>/*.jpg, one folder per class")
        for split in ("train", "val"):
            warn_empty_folders(self.root / split)
        return classes

    def _read_words(self) -> dict[str, str]:
        from tinyzoo.wordnet import wnid_names

        names = super()._read_words()
        for wnid, words in wnid_names(w for w in self.wnids if names[w] == w).items():
            names[wnid] = words
        return names

    def _test_folder(self) -> Path:
        images = self.root / "test" / "images"
        return images if images.is_dir() or not list_images(self.root / "test") else self.root / "test"

    def _unknown_folder(self, folder: Path) -> str | None:
        if not has_images(folder):
            return None  # an empty folder is no class, and no mistake either
        return f"{folder}: folder is not one of the classes in {self.root / 'train'}; every class needs a training folder"

    def _missing_folder(self, folder: Path, wnid: str, split: str) -> None:
        pass  # a class may have no validation images

    def _empty_folder(self, folder: Path, wnid: str, split: str) -> None:
        pass  # named once, with the other empty folders, by warn_empty_folders


def warn_empty_folders(base: Path) -> None:
    """One ``tinyzoo: warning:`` line (once per folder and process) naming the subfolders of a
    class-folder split that hold no images: they are not classes, and are left out."""
    from tinyzoo.logs import logger

    empty = [name for name in subfolder_names(base) if name != "images" and not has_images(base / name)]
    if not empty or base in _WARNED_EMPTY:
        return
    _WARNED_EMPTY.add(base)
    shown = ", ".join(empty[:3]) + (f" and {len(empty) - 3} more" if len(empty) > 3 else "")
    logger.warning(f"{len(empty)} folder(s) in {base} hold no images and are not classes: {shown}")


_WARNED_EMPTY: set[Path] = set()


def has_images(folder: Path) -> bool:
    """Whether ``folder`` (or its ``images/`` subfolder) directly holds an image file."""
    for place in (folder, folder / "images"):
        try:
            if scan_images(place)[0]:
                return True
        except OSError:
            continue
    return False


def subfolder_names(base: Path) -> list[str]:
    """The sorted names of ``base``'s visible subfolders (links that loop left out)."""
    try:
        with os.scandir(base) as entries:
            return sorted(e.name for e in entries if not e.name.startswith(".") and _is_dir(e))
    except OSError:
        return []


def class_folder_names(base: Path) -> list[str]:
    """The sorted names of ``base``'s visible subfolders that hold images (the classes of a class-folder split)."""
    return [name for name in subfolder_names(base) if has_images(base / name)]


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise TinyzooError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether a folder entry is (or links to) a folder; a link that loops is not."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def scan_images(folder: Path) -> tuple[list[Path], list[str]]:
    """``(images, problems)``: the image files directly in ``folder`` (JPEG or PNG, any case),
    sorted by name, hidden files skipped; and a one-line message for each entry with an image's
    name that is a symbolic link to nothing (dangling) or to itself (a loop)."""
    if not folder.is_dir():
        return [], []
    images, problems = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.lower().endswith(IMAGE_SUFFIXES):
                continue
            try:
                if entry.is_file():
                    images.append(folder / entry.name)
                    continue
            except OSError as exc:
                problems.append(f"{folder / entry.name}: symbolic link loop ({exc.strerror}); remove it or link it to an image")
                continue
            if entry.is_symlink():
                problems.append(f"{folder / entry.name}: broken symbolic link to {os.readlink(folder / entry.name)}, which does not exist; "
                                "remove it or link it to an image")
    return sorted(images, key=lambda p: p.name), sorted(problems)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (see :func:`scan_images`); a broken link among them is a one-line error."""
    images, problems = scan_images(folder)
    if problems:
        raise TinyzooError(problems[0] + (f" ({len(problems) - 1} more like it in {folder})" if len(problems) > 1 else ""))
    return images


def parse_box(fields: list[str]) -> tuple[int, int, int, int] | None:
    try:
        x0, y0, x1, y1 = (int(float(f)) for f in fields)
    except ValueError:
        return None
    return x0, y0, x1, y1


def read_boxes(path: Path) -> dict[str, tuple[int, int, int, int]]:
    """``<wnid>_boxes.txt`` as file name -> box; missing file or malformed lines give nothing."""
    if not path.is_file():
        return {}
    boxes = {}
    for line in path.read_text().splitlines():
        fields = line.split("\t") if "\t" in line else line.split()
        box = parse_box(fields[1:5]) if len(fields) >= 5 else None
        if box is not None:
            boxes[fields[0].strip()] = box
    return boxes


# --- pixels --------------------------------------------------------------------------


def read_image(path, name: str | None = None) -> tuple[np.ndarray, str, tuple[int, int]]:
    """``(pixels, mode, size)``: a uint8 (64, 64, 3) RGB array, the file's own mode and (w, h).

    ``path`` is a file path or a binary file object (then ``name`` says what to call it in
    errors). Grayscale, CMYK, palette and alpha images become RGB; other sizes are resized
    (bicubic). An unreadable file raises :class:`TinyzooError` naming it.
    """
    from PIL import Image, UnidentifiedImageError

    label = path if name is None else name
    try:
        with Image.open(path) as im:
            mode, size = im.mode, im.size
            im.load()  # decode now, so a truncated file fails here and not later
            if im.mode != "RGB":
                im = im.convert("RGB")
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
            return np.asarray(im, dtype=np.uint8), mode, size
    except UnidentifiedImageError:
        raise TinyzooError(f"{label}: cannot decode image: not a recognised image format") from None
    except FileNotFoundError:
        raise TinyzooError(f"{label}: cannot decode image: file not found") from None
    except (OSError, SyntaxError, ValueError) as exc:
        problem = "file is truncated" if "truncated" in str(exc) else one_line(exc) or type(exc).__name__
        raise TinyzooError(f"{label}: cannot decode image: {problem}") from None


def decode_chunk(npy_path: str, start: int, paths: list[str]) -> dict:
    """Decode the image files ``paths`` into rows ``start...`` of the ``.npy`` at ``npy_path`` (see :func:`decode_items`)."""
    return decode_items(npy_path, start, [(path, None) for path in paths])


def decode_items(npy_path: str, start: int, items: list[tuple]) -> dict:
    """Decode ``items`` into rows ``start...`` of the (N, 64, 64, 3) ``.npy`` at ``npy_path``.

    Each item is ``(path, None)`` or ``(binary file object, name)``, as :func:`read_image`
    takes them. Runs in a worker process. Returns the per-chunk tallies the cache needs:
    ``errors`` (row, message) for images that failed (their rows are left zero), ``modes`` and
    ``sizes`` counters, ``resized`` count, and the sums behind the dataset statistics
    (``pixel_sum`` (64, 64, 3) and ``cross`` (3, 3) over the good rows, ``good`` count).
    """
    out = np.load(npy_path, mmap_mode="r+", allow_pickle=False)
    errors: list[tuple[int, str]] = []
    modes: Counter = Counter()
    sizes: Counter = Counter()
    good = np.ones(len(items), dtype=bool)
    for i, (path, name) in enumerate(items):
        try:
            pixels, mode, size = read_image(path, name)
        except TinyzooError as exc:
            errors.append((start + i, str(exc)))
            good[i] = False
            continue
        out[start + i] = pixels
        modes[mode] += 1
        sizes[f"{size[0]}x{size[1]}"] += 1
    rows = np.asarray(out[start:start + len(items)][good])
    out.flush()
    del out
    flat = rows.reshape(-1, 3).astype(np.float32)
    return {
        "start": start,
        "errors": errors,
        "modes": dict(modes),
        "sizes": dict(sizes),
        "resized": sum(n for s, n in sizes.items() if s != f"{IMAGE_SIZE}x{IMAGE_SIZE}"),
        "good": int(good.sum()),
        "pixel_sum": rows.sum(axis=0, dtype=np.float64),
        "cross": (flat.T @ flat).astype(np.float64),
    }


def read_header(path: str | os.PathLike) -> tuple[str, tuple[int, int]] | None:
    """``(mode, (w, h))`` from the file's header without decoding it; None if it is not an image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except Exception:
        return None
