"""Test-time views: pure tensor functions that turn a batch of images into a batch of crops.

Every view function takes an ``(B, C, H, W)`` batch (``uint8`` or floating point) and the
crop size ``s`` the network expects (its ``input_size``, 56 for ``--stem small`` on
64x64 images) and returns one ``(V * B, C, s, s)`` tensor, *view-major*: rows
``v * B ... (v + 1) * B - 1`` are view ``v`` of every image, so all views of a batch go
through the network as one forward and ``scores.view(V, B, K)`` undoes the stacking.

Pixel values are never rescaled here: a ``uint8`` batch comes back as ``float32`` holding
0..255, a floating batch keeps its dtype. Normalisation happens after the views.

Crop coordinates, ``(top, left)`` of an ``s x s`` box in an ``H x W`` image, with
``dy = H - s`` and ``dx = W - s`` (64 -> 56: ``dy = dx = 8``):

====================  ==============================  ==================
view                  box                              64 -> 56
====================  ==============================  ==================
center                ``(dy // 2, dx // 2)``           ``(4, 4)``
top-left              ``(0, 0)``                       ``(0, 0)``
top-right             ``(0, dx)``                      ``(0, 8)``
bottom-left           ``(dy, 0)``                      ``(8, 0)``
bottom-right          ``(dy, dx)``                     ``(8, 8)``
full                  whole image resized to ``s``     bilinear, antialiased
====================  ==============================  ==================

A mirror is the same box flipped left to right (``flip`` of the last axis). An odd
margin puts the extra pixel of a center crop at the bottom/right (floor division).

View sets and their order (``V`` rows of the output):

- ``center`` (1): center.
- ``full`` (1): full.
- ``10crop`` (10): center, top-left, top-right, bottom-left, bottom-right, then the
  mirrors of those five in the same order (Kim's 10-crop).
- ``12crop`` (12): the ten of ``10crop``, then full, then full mirrored (Kim's 12-crop).
- ``dense`` (1): the whole image at its own size, no crop, no resize, for a
  convolutionized network whose output is a score map; each cell of that map then
  counts as one view when the scores are combined (Fleuret's OverFeat-style
  evaluation).
"""

from __future__ import annotations

from typing import NamedTuple

from tinyzoo.errors import TinyzooError

VIEW_SETS = ("center", "full", "10crop", "12crop", "dense")
VIEW_COUNTS = {"center": 1, "full": 1, "10crop": 10, "12crop": 12, "dense": 1}


class Box(NamedTuple):
    """One view of an ``H x W`` image: an ``size x size`` crop at ``(top, left)``, or the
    whole image resized (``resized=True``, then ``top = left = 0`` and ``size`` is the
    output size), optionally mirrored left to right."""

    name: str
    top: int
    left: int
    size: int
    mirrored: bool = False
    resized: bool = False


def boxes(view_set: str, height: int, width: int, crop: int) -> list[Box]:
    """The exact boxes ``view_set`` takes from an ``height x width`` image, in output order."""
    check_view_set(view_set)
    if view_set == "dense":
        return [Box("whole image", 0, 0, max(height, width))]
    check_crop(height, width, crop)
    dy, dx = height - crop, width - crop
    center_box = Box("center", dy // 2, dx // 2, crop)
    if view_set == "center":
        return [center_box]
    full_box = Box("full", 0, 0, crop, resized=True)
    if view_set == "full":
        return [full_box]
    five = [
        center_box,
        Box("top-left", 0, 0, crop),
        Box("top-right", 0, dx, crop),
        Box("bottom-left", dy, 0, crop),
        Box("bottom-right", dy, dx, crop),
    ]
    ten = five + [b._replace(name=b.name + " mirrored", mirrored=True) for b in five]
    if view_set == "10crop":
        return ten
    return ten + [full_box, full_box._replace(name="full mirrored", mirrored=True)]


def view_count(view_set: str) -> int:
    """How many forwards' worth of rows ``view_set`` makes per image (``dense``: 1 image,
    however many cells its score map has)."""
    check_view_set(view_set)
    return VIEW_COUNTS[view_set]


def make_views(view_set: str, images, crop: int):
    """``images`` ``(B, C, H, W)`` -> the ``(V * B, C, s, s)`` batch of ``view_set`` (see module doc)."""
    check_view_set(view_set)
    if view_set == "dense":
        return dense(images)
    return _take(images, boxes(view_set, images.shape[-2], images.shape[-1], crop))


def center(images, crop: int):
    """The center ``crop x crop`` box of every image: ``(B, C, crop, crop)``."""
    return make_views("center", images, crop)


def full(images, crop: int):
    """Every whole image resized to ``crop x crop`` (bilinear, antialiased): ``(B, C, crop, crop)``."""
    return make_views("full", images, crop)


def ten_crop(images, crop: int):
    """Kim's 10-crop: center and four corners, then their mirrors: ``(10 * B, C, crop, crop)``."""
    return make_views("10crop", images, crop)


def twelve_crop(images, crop: int):
    """Kim's 12-crop: ``ten_crop`` then full and full mirrored: ``(12 * B, C, crop, crop)``."""
    return make_views("12crop", images, crop)


def dense(images):
    """The whole images unchanged (as float) for a convolutionized network: ``(B, C, H, W)``."""
    return _as_float(images)


def resize(images, size: int):
    """Every image resized to ``size x size`` (bilinear, antialiased when shrinking), as float."""
    import torch.nn.functional as F

    images = _as_float(images)
    if images.shape[-2:] == (size, size):
        return images
    # antialias only helps when shrinking; bilinear upsampling ignores it anyway
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _take(images, view_boxes: list[Box]):
    import torch

    images = _as_float(images)
    out = []
    for box in view_boxes:
        if box.resized:
            view = resize(images, box.size)
        else:
            view = images[..., box.top:box.top + box.size, box.left:box.left + box.size]
        out.append(view.flip(-1) if box.mirrored else view)
    return out[0] if len(out) == 1 else torch.cat(out, dim=0)


def _as_float(images):
    import torch

    if images.ndim != 4:
        raise TinyzooError(f"views need an (N, C, H, W) batch, got a tensor of shape {tuple(images.shape)}")
    return images if images.is_floating_point() else images.to(torch.float32)


def check_view_set(view_set: str) -> None:
    if view_set not in VIEW_COUNTS:
        raise TinyzooError(f"unknown view set {view_set!r}; choose one of: {', '.join(VIEW_SETS)}")


def check_crop(height: int, width: int, crop: int) -> None:
    if not 0 < crop <= min(height, width):
        raise TinyzooError(
            f"crop size {crop} does not fit {height}x{width} images; it must be between 1 and {min(height, width)}"
        )
