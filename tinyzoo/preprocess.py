"""How a model wants its images: one :class:`Preprocess`, written into its config.json, read by everyone.

An adapted model's ``config.json`` holds ``preprocess``, the only description of how images
become its input (as torchvision's ``Weights`` carry their transforms)::

    "preprocess": {"crop": 56, "resize": 64, "interpolation": "bilinear", "normalize": "imagenet",
                   "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

``tinyzoo.create`` writes it from the architecture (its adapted input size, the weights' mean,
std and interpolation); the trainer replaces it with what its recipe evaluates with (crop
``evaluation.crop``, the normalisation of ``data.eval`` with the numbers spelled out). The
trainer's validation, ``eval``, ``ensemble``, ``predict`` and ``analyze`` read nothing else.

Applied to a uint8 ``(N, H, W, 3)`` batch, in this order:

1. normalise every pixel: ``(x / 255 - mean) / std`` per channel, or, for ``normalize =
   "pixel"`` (Zhai), ``(x / 255 - pixel_mean[y, x]) / std`` with the training split's per-pixel
   mean image;
2. resize the image to ``resize x resize`` (``interpolation``, antialiased) when it is not that
   size already: 64 (no resize) for crops that fit the 64x64 image, else the crop scaled by
   64/56 (224 -> 256, as ImageNet's 256/224), so crops keep the ratio of training;
3. cut the views of side ``crop`` (:mod:`tinyzoo.evaluate.views`; the center crop for
   validation).

Normalising before the geometry gives the same numbers as after it: crops and flips move
pixels, and resizing mixes them with weights that sum to one. The per-pixel mean image (64 x 64
x 3 numbers) is not written into config.json: :func:`save_tensors` puts it in
``preprocess.safetensors`` beside ``model.safetensors`` in the same atomic save, config.json
names that file, and :func:`load_tensors` reads it back, so a copied ``best/`` evaluates alike.
In memory it is the model's ``tinyzoo_pixel_mean`` attribute.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.specs import CROP_SIZE, IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD

NORMALIZE = ("imagenet", "dataset", "pixel", "none", "custom")  # where mean/std came from (data.md's normalize)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
PIXEL_MEAN_FILE = "preprocess.safetensors"  # beside model.safetensors, for normalize = "pixel"
PIXEL_MEAN_KEY = "pixel_mean"  # the tensor's name in that file
PIXEL_MEAN_ATTR = "tinyzoo_pixel_mean"  # the model attribute holding it in memory
NO_SHIFT, NO_SCALE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
_NOT_NEEDED = object()  # stands in for a mean image where only the description is wanted


def resize_for(crop: int | None) -> int:
    """The side the 64x64 image is resized to before ``crop`` views are cut: 64 when the crop
    fits, else ``ceil(crop * 64 / 56)`` (224 -> 256)."""
    if crop is None or crop <= IMAGE_SIZE:
        return IMAGE_SIZE
    return -(-crop * IMAGE_SIZE // CROP_SIZE)


@dataclass(frozen=True)
class Preprocess:
    """How images become network input (see the module doc for the order of the steps).

    ``crop``: the views' side (``None``: the whole image); ``resize``: the side the image is
    resized to first; ``interpolation``: of that resize; ``normalize``: where ``mean`` and
    ``std`` (per channel, 0..1 units) came from; ``pixel_mean``: the ``(H, W, 3)`` float32
    mean image (0..1) for ``normalize = "pixel"``, else None.
    """

    crop: int | None
    resize: int = IMAGE_SIZE
    interpolation: str = "bilinear"
    normalize: str = "imagenet"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pixel_mean: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = "preprocess"
        if self.crop is not None and not (isinstance(self.crop, int) and self.crop >= 1):
            raise TinyzooError(f"{where}.crop must be a positive integer, not {self.crop!r}")
        if not (isinstance(self.resize, int) and self.resize >= 1):
            raise TinyzooError(f"{where}.resize must be a positive integer, not {self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise TinyzooError(f"{where}.interpolation must be one of {', '.join(INTERPOLATIONS)}, not {self.interpolation!r}")
        if self.normalize not in NORMALIZE:
            raise TinyzooError(f"{where}.normalize must be one of {', '.join(NORMALIZE)}, not {self.normalize!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
                raise TinyzooError(f"{where}.{name} must be 3 numbers (R, G, B on the 0..1 scale), not {list(value)!r}")
        if min(self.std) <= 0:
            raise TinyzooError(f"{where}.std must be positive, not {list(self.std)!r}")
        if self.normalize == "pixel" and self.pixel_mean is None:
            raise TinyzooError(
                f"{where}.normalize is 'pixel' but the model carries no per-pixel mean image "
                f"(its directory needs the {PIXEL_MEAN_FILE} config.json names); train it again with this tinyzoo"
            )

    # -- config.json --------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """The JSON-ready ``preprocess`` entry of config.json."""
        entry: dict[str, Any] = {"crop": self.crop, "resize": self.resize, "interpolation": self.interpolation,
                                 "normalize": self.normalize, "mean": list(self.mean), "std": list(self.std)}
        if self.pixel_mean is not None:
            entry["pixel_mean"] = PIXEL_MEAN_FILE
        return entry

    @classmethod
    def from_config(cls, config: dict | None, *, pixel_mean: Any = None) -> Preprocess:
        """The preprocessing an adapted model's config (the dict of config.json) describes.

        Reads ``preprocess``; a config written before it existed gives ``input_size``,
        ``mean``, ``std`` and ``interpolation`` (ImageNet's mean and std when absent), and a
        trainer's entry of that time lacks ``resize`` and ``interpolation``.
        """
        config = config or {}
        entry = config.get("preprocess")
        try:
            if entry is None:
                return cls._from_fields(config, pixel_mean)
            if not isinstance(entry, dict):
                raise TinyzooError(f"preprocess must be an object, not {entry!r}")
            crop, normalize = entry.get("crop"), entry.get("normalize", "custom")
            shift, scale = (NO_SHIFT, NO_SCALE) if normalize == "none" else (IMAGENET_MEAN, IMAGENET_STD)
            mean, std = _unit(_triple(entry.get("mean", shift)), _triple(entry.get("std", scale)))
            return cls(crop, entry.get("resize", resize_for(crop)), entry.get("interpolation", "bilinear"), normalize, mean, std,
                       pixel_mean=pixel_mean if normalize == "pixel" else None)
        except TinyzooError as exc:
            raise TinyzooError(f"config.json: {exc}") from None

    @classmethod
    def _from_fields(cls, config: dict, pixel_mean: Any) -> Preprocess:
        crop = config.get("input_size")
        mean, std = _unit(_triple(config.get("mean") or IMAGENET_MEAN), _triple(config.get("std") or IMAGENET_STD))
        normalize = "imagenet" if (mean, std) == (IMAGENET_MEAN, IMAGENET_STD) else "custom"
        return cls(crop, resize_for(crop), config.get("interpolation") or "bilinear", normalize, mean, std)

    @property
    def view_side(self) -> int:
        """The side of the square views the network gets: ``crop``, or the whole resized image."""
        return self.crop if self.crop is not None else self.resize

    def with_crop(self, crop: int | None) -> Preprocess:
        """The same normalisation with views of side ``crop`` (resize chosen by :func:`resize_for`)."""
        if crop is None or crop == self.crop:
            return self
        return dataclasses.replace(self, crop=crop, resize=resize_for(crop))

    # -- applying it --------------------------------------------------------------------------
    def __call__(self, images):
        """uint8 ``(N, H, W, 3)`` on any device -> float32 ``(N, 3, S, S)``, normalised and
        resized to ``resize`` (``S``; views are cut afterwards)."""
        import torch

        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
            raise TinyzooError(f"images must be a uint8 (N, H, W, 3) batch, got {tuple(images.shape)} {images.dtype}")
        x = images.permute(0, 3, 1, 2).to(torch.float32)  # a fresh tensor, normalised in place below
        pixel_mean = None
        if self.pixel_mean is not None:
            pixel_mean = torch.as_tensor(self.pixel_mean, dtype=torch.float32, device=x.device)
            if tuple(pixel_mean.shape) != (x.shape[2], x.shape[3], 3):
                raise TinyzooError(
                    f"the model's per-pixel mean image is {tuple(pixel_mean.shape[:2])} but the images are {tuple(x.shape[2:])}"
                )
            pixel_mean = pixel_mean.permute(2, 0, 1)[None]
        x = normalise_(x, self.mean, self.std, scale=1 / 255, pixel_mean=pixel_mean)
        return resize(x, self.resize, self.interpolation)


def normalise_(x, mean, std, *, scale: float, pixel_mean=None):
    """Normalise an ``(N, 3, H, W)`` float batch in place and return it: ``(x * scale - mean) / std``
    per channel, computed as ``x * (scale / std) - mean / std``, or ``(x * scale - pixel_mean) / std``
    with a per-pixel mean ``(N or 1, 3, H, W)``. Training's augmentation and evaluation both use it."""
    import torch

    std = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    if pixel_mean is not None:
        if scale != 1.0:
            x.mul_(scale)
        return x.sub_(pixel_mean).div_(std)
    mean = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.mul_(scale / std).sub_(mean / std)


def resize(x, size: int, interpolation: str = "bilinear"):
    """``(N, C, H, W)`` float images resized to ``size x size`` (antialiased unless ``nearest``);
    returned as they are when already that size."""
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == (size, size):
        return x
    if interpolation == "nearest":
        return F.interpolate(x, size=(size, size), mode="nearest")
    return F.interpolate(x, size=(size, size), mode=interpolation, align_corners=False, antialias=True)


# -- the model's copy -----------------------------------------------------------------------------
def for_architecture(spec, input_size: int | None) -> Preprocess:
    """What ``tinyzoo.create`` records: views of the adapted ``input_size``, the architecture's
    mean, std and interpolation."""
    mean, std = _triple(spec.mean), _triple(spec.std)
    normalize = "imagenet" if (mean, std) == (IMAGENET_MEAN, IMAGENET_STD) else "custom"
    return Preprocess(input_size, resize_for(input_size), spec.interpolation, normalize, mean, std)


def describe(config: dict) -> str:
    """How the model of ``config`` wants its images, in words (for its model card)."""
    wants = Preprocess.from_config(config, pixel_mean=_NOT_NEEDED)
    shift = "the training images' per-pixel mean" if wants.normalize == "pixel" else f"mean {list(wants.mean)}"
    return f"{wants.crop}x{wants.crop} RGB views normalised with {shift} and std {list(wants.std)}"


def record(model, preprocess: Preprocess) -> None:
    """Make ``preprocess`` the model's: its config's ``preprocess`` entry and, for ``pixel``, its mean image."""
    config = getattr(model, "tinyzoo_config", None)
    if not isinstance(config, dict):
        raise TinyzooError("this model has no tinyzoo_config: record preprocessing on models made by tinyzoo.create or tinyzoo.load")
    config["preprocess"] = preprocess.to_config()
    setattr(model, PIXEL_MEAN_ATTR, preprocess.pixel_mean)


def of(model) -> Preprocess:
    """How ``model`` wants its images, from its config (and, for ``pixel``, the mean image it carries)."""
    return Preprocess.from_config(getattr(model, "tinyzoo_config", None), pixel_mean=getattr(model, PIXEL_MEAN_ATTR, None))


def save_tensors(model, folder: Path) -> list[str]:
    """Write the model's per-pixel mean (if it has one) into ``folder``; returns the file names written."""
    from safetensors.torch import save_file

    from tinyzoo.atomic_files import fsync_file

    pixel_mean = getattr(model, PIXEL_MEAN_ATTR, None)
    if pixel_mean is None:
        return []
    import torch

    tensor = torch.as_tensor(pixel_mean, dtype=torch.float32).detach().cpu().contiguous()
    save_file({PIXEL_MEAN_KEY: tensor}, str(Path(folder) / PIXEL_MEAN_FILE))
    fsync_file(Path(folder) / PIXEL_MEAN_FILE)
    return [PIXEL_MEAN_FILE]


def load_tensors(model, folder: Path) -> None:
    """Read back what :func:`save_tensors` wrote, as config.json's ``preprocess`` names it."""
    entry = (getattr(model, "tinyzoo_config", None) or {}).get("preprocess") or {}
    name = entry.get("pixel_mean") if isinstance(entry, dict) else None
    if not name:
        setattr(model, PIXEL_MEAN_ATTR, None)
        return
    path = Path(folder) / str(name)
    if Path(str(name)).name != name or not path.is_file():
        raise TinyzooError(f"{Path(folder) / 'config.json'}: preprocess.pixel_mean names {name!r}, which is not a file beside it")
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise TinyzooError(f"{path} is not a valid safetensors file ({one_line(exc, 120)})") from None
    if PIXEL_MEAN_KEY not in tensors:
        raise TinyzooError(f"{path} holds no {PIXEL_MEAN_KEY!r} tensor")
    setattr(model, PIXEL_MEAN_ATTR, tensors[PIXEL_MEAN_KEY])


def _triple(value) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3:
        raise TinyzooError(f"preprocess.mean and .std must be 3 numbers (R, G, B on the 0..1 scale), not {value!r}")
    return values


def _unit(mean: tuple, std: tuple) -> tuple[tuple, tuple]:
    """Mean and std on the 0..1 scale (configs of other tools give them in 0..255 units)."""
    if max(mean) > 1.0:
        return tuple(m / 255 for m in mean), tuple(s / 255 for s in std)
    return mean, std
