"""Photographs of any size as paired views: what the adapted network sees and what the original sees.

A *box* is a square region of one photo: ``(photo index, top, left, side)``. Each box gives two
views of the same field of view:

- ``small``: the box downsampled with antialiasing to 64x64 px, Tiny ImageNet's size, and
  then either kept whole (view ``full``) or cut to its central 56x56 (view ``center``);
- ``native``: the same field of view (the whole box, or its central 56/64 for ``center``)
  resized to the original network's native size (224 px for most).

Both are rounded to uint8, as photographs and Tiny ImageNet's JPEGs are. The fidelity
measurement (:mod:`tinyzoo.evaluate.fidelity`) and BatchNorm recalibration
(``tinyzoo adapt --recalibrate-bn``) read their images through this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyzoo.errors import TinyzooError
from tinyzoo.specs import CROP_SIZE, IMAGE_SIZE, PHOTO_VIEWS

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CROP_SCALE = (0.5, 1.0)  # a box's side, as a fraction of the photo's short side
MIN_SIDE = IMAGE_SIZE


@dataclass(frozen=True)
class Photo:
    """One decoded photograph: ``name`` (file name) and ``pixels`` (uint8 ``(H, W, 3)``)."""

    name: str
    pixels: np.ndarray = field(repr=False)


@dataclass
class ImageViews:
    """Paired views of the same boxes (see the module docstring).

    ``small`` is uint8 ``(N, s, s, 3)`` with ``s`` 64 or 56; ``native`` is uint8
    ``(N, n, n, 3)`` or ``None`` when not asked for; ``photo`` the photo index of each row;
    ``source`` says where the images came from (recorded in config.json).
    """

    small: np.ndarray
    native: np.ndarray | None
    photo: np.ndarray
    view: str
    source: str
    cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.small)


def check_view(view: str) -> str:
    if view not in PHOTO_VIEWS:
        raise TinyzooError(f"view {view!r} is not one of: {', '.join(PHOTO_VIEWS)}")
    return view


def photo_files(folder: str | os.PathLike) -> list[Path]:
    """Image files in ``folder`` and its subfolders, sorted by path; hidden files skipped."""
    root = Path(folder)
    if not root.is_dir():
        raise TinyzooError(f"{root} is not a directory: give a folder of photographs (JPEG or PNG)")
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise TinyzooError(f"{root} holds no photographs ({', '.join(PHOTO_SUFFIXES)})")
    return files


def read_photo(path: str | os.PathLike) -> Photo:
    """A photograph as RGB uint8 at its own size; an unreadable file is a one-line error naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise TinyzooError(f"{path}: cannot decode image: not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise TinyzooError(f"{path}: cannot decode image: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    return Photo(Path(path).name, pixels)


def read_photos(folder: str | os.PathLike, *, min_side: int = MIN_SIDE) -> list[Photo]:
    """Every photograph in ``folder`` (see :func:`photo_files`); each must be ``min_side`` px or more on its short side."""
    photos = []
    for path in photo_files(folder):
        photo = read_photo(path)
        height, width = photo.pixels.shape[:2]
        if min(height, width) < min_side:
            raise TinyzooError(f"{path}: {width}x{height} px is too small; photographs need {min_side} px or more on the short side")
        photos.append(photo)
    return photos


def random_boxes(photos: list[Photo], per_photo: int, rng: np.random.Generator, scale=CROP_SCALE) -> np.ndarray:
    """``per_photo`` random square boxes per photo, rows ``(photo, top, left, side)`` (int64):
    sides uniform in ``scale`` times the short side, positions uniform."""
    rows = []
    for index, photo in enumerate(photos):
        height, width = photo.pixels.shape[:2]
        short = min(height, width)
        for _ in range(per_photo):
            side = max(1, round(short * rng.uniform(*scale)))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            rows.append((index, top, left, side))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def whole_boxes(photos: list[Photo]) -> np.ndarray:
    """One box per photo: its largest central square."""
    rows = []
    for index, photo in enumerate(photos):
        height, width = photo.pixels.shape[:2]
        side = min(height, width)
        rows.append((index, (height - side) // 2, (width - side) // 2, side))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def _resize(pixels: np.ndarray, size: int):
    """uint8 ``(H, W, 3)`` -> float ``(3, size, size)`` in 0..255, bicubic, antialiased when shrinking."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float()  # a writable copy
    if x.shape[-2:] == (size, size):
        return x[0]
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)[0]


def _to_uint8(x) -> np.ndarray:
    return x.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def box_views(photos: list[Photo], boxes: np.ndarray, *, view: str = "full", native: int | None = None,
              source: str = "") -> ImageViews:
    """The ``small`` (and, with ``native``, the ``native``) views of ``boxes``."""
    check_view(view)
    small, big = [], []
    margin = (IMAGE_SIZE - CROP_SIZE) // 2
    for index, top, left, side in boxes.tolist():
        crop = photos[index].pixels[top:top + side, left:left + side]
        tiny = _to_uint8(_resize(crop, IMAGE_SIZE))
        small.append(tiny if view == "full" else tiny[margin:margin + CROP_SIZE, margin:margin + CROP_SIZE])
        if native:
            inner = crop
            if view == "center":  # the field of view of the central 56 of the 64 px image
                cut = round(side * margin / IMAGE_SIZE)
                inner = crop[cut:side - cut, cut:side - cut]
            big.append(_to_uint8(_resize(inner, native)))
    return ImageViews(
        small=np.stack(small), native=np.stack(big) if native else None,
        photo=boxes[:, 0].copy(), view=view, source=source,
    )


def normalised_batches(images: np.ndarray, mean, std, *, batch_size: int = 64, channels_last: bool = True):
    """uint8 ``(N, H, W, 3)`` -> float ``(B, 3, H, W)`` batches normalised by ``mean``/``std`` (0..1 units)."""
    import torch

    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).permute(0, 3, 1, 2).float()
        x = (x - m) / s
        yield x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def calibration_views(folder: str | os.PathLike, *, count: int, view: str, native: int, seed: int = 0) -> ImageViews:
    """``count`` calibration images from ``folder``, as views for BatchNorm recalibration.

    A Tiny ImageNet folder (one with ``wnids.txt`` and ``train/``) gives ``count`` of its
    training images, whole (they are 64x64 already). Any other folder is read as photographs
    and gives random square boxes, the same number from each photo (``count`` rounded up to a
    multiple of the number of photos).
    """
    root = Path(folder)
    rng = np.random.default_rng(seed)
    if (root / "wnids.txt").is_file() and (root / "train").is_dir():
        from tinyzoo.data.layout import TinyImageNet

        files, _ = TinyImageNet(root).split_files("train")
        if not files:
            raise TinyzooError(f"{root}/train holds no images to calibrate BatchNorm with")
        chosen = sorted(rng.choice(len(files), size=min(count, len(files)), replace=False).tolist())
        photos = [read_photo(files[i]) for i in chosen]
        boxes = whole_boxes(photos)
        source = f"{root} (train, {len(photos)} images)"
    else:
        photos = read_photos(root)
        per_photo = max(1, -(-count // len(photos)))
        boxes = random_boxes(photos, per_photo, rng)
        source = f"{root} ({len(boxes)} crops of {len(photos)} photos)"
    return box_views(photos, boxes, view=view, native=native, source=source)


def array_views(images: np.ndarray, *, view: str = "center", native: int | None = None, source: str = "") -> ImageViews:
    """Views of whole images given as one uint8 ``(N, H, W, 3)`` array (a decoded Tiny ImageNet split)."""
    photos = [Photo(str(i), np.asarray(image)) for i, image in enumerate(images)]
    return box_views(photos, whole_boxes(photos), view=view, native=native, source=source)
