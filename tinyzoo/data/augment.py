"""Batched augmentation: a uint8 NHWC batch in, a normalised float NCHW batch out, one op per batch.

Every random choice is per sample (each image its own crop offset, flip, jitter factors),
drawn from a CPU ``torch.Generator`` and moved to the batch's device, so a seed gives the
same batch on CPU and GPU. The geometry (crop, padding, flip) is a single gather from the
uint8 batch; colour ops run on the float crop; mixup/cutmix come last.

On a GPU nothing here waits for the device: random parameters travel in pinned memory
without blocking, constants (means, eigenvectors, the per-pixel mean image) are moved once
per device, and every decision that needs a number on the host (mix or not, the cutmix box,
the jitter order) is taken from the CPU draw, so a training step can be queued while the
previous one runs.

Config keys (:data:`CONFIG_KEYS`, documented in docs/data.md) are what recipes write under
their augmentation table; :meth:`Pipeline.from_config` checks them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tinyzoo.errors import TinyzooError
from tinyzoo.preprocess import (
    NO_SCALE,
    NO_SHIFT,
    NORMALIZE,
    Preprocess,
    normalise_,
    resize_for,
)
from tinyzoo.specs import CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD

# AlexNet's PCA of ImageNet RGB (0..1 scale), as fb.resnet.torch uses for Kim's lighting noise
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))
GRAY_WEIGHTS = (0.299, 0.587, 0.114)

CROP_MODES = ("random", "ten", "resized", "center")
PADDING_MODES = ("constant", "edge", "reflect")
TORCH_PAD_MODES = {"constant": "constant", "edge": "replicate", "reflect": "reflect"}
EVAL_CROPS = ("center", "resize")
LIGHTING_PCA = ("imagenet", "dataset")

# key -> (default, one-line meaning); the order is the order docs/data.md lists them
CONFIG_KEYS: dict[str, tuple[Any, str]] = {
    "crop": (CROP_SIZE, "output side in pixels (56 = Kim, 57 = Zhai, 64 = full image)"),
    "crop_mode": ("random", "training geometry: random | ten (Yu's 4 corners + center) | resized (random-resized crop) | center"),
    "padding": (0, "pixels added on every side before a random crop (64 with padding 4: CIFAR-style)"),
    "padding_mode": ("constant", "constant (black) | edge | reflect"),
    "scale": ([0.35, 1.0], "random-resized crop: range of the crop's area as a fraction of the image"),
    "ratio": ([0.75, 4 / 3], "random-resized crop: range of the crop's aspect ratio (w/h)"),
    "flip": (True, "mirror each image left-right with probability 0.5"),
    "jitter": (0.0, "colour jitter: one number for all, or {brightness, contrast, saturation}; factor ~ U[1-v, 1+v]"),
    "lighting": (0.0, "AlexNet PCA lighting noise: std of the per-component alpha (0.1 in fb.resnet.torch)"),
    "lighting_pca": ("imagenet", "eigenvectors for lighting: imagenet (AlexNet's) | dataset (the training split's)"),
    "normalize": ("imagenet", "imagenet | dataset (channel mean/std) | pixel (Zhai: per-pixel mean image, channel std) | none (0..1) | custom"),
    "mean": (None, "3 numbers, 0..1 scale, for normalize = custom"),
    "std": (None, "3 numbers, 0..1 scale, for normalize = custom"),
    "mixup": (0.0, "mixup Beta(alpha, alpha) parameter; 0 = off"),
    "cutmix": (0.0, "cutmix Beta(alpha, alpha) parameter; 0 = off (both on: each batch picks one, 50/50)"),
    "mix_prob": (1.0, "probability that a batch is mixed when mixup or cutmix is on"),
    "eval_crop": ("center", "evaluation geometry: center (center crop) | resize (whole image resized to crop)"),
    "channels_last": (False, "return the NCHW batch with channels-last strides (skips one copy)"),
}
JITTER_KEYS = ("brightness", "contrast", "saturation")


@dataclass(frozen=True)
class Pipeline:
    """An augmentation pipeline; call it on a uint8 (N, H, W, 3) batch on any device.

    Build one with :meth:`from_config`. ``train=False`` (see :meth:`eval`) gives the
    deterministic evaluation view: ``eval_crop`` geometry, no flips, jitter or mixing.
    """

    crop: int = CROP_SIZE
    crop_mode: str = "random"
    padding: int = 0
    padding_mode: str = "constant"
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    flip: bool = True
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    lighting: float = 0.0
    lighting_pca: str = "imagenet"
    normalize: str = "imagenet"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    eval_crop: str = "center"
    channels_last: bool = False
    train: bool = True
    stats: Any = dataclasses.field(default=None, repr=False, compare=False)
    # constant tensors already on a device, keyed by (name, device): moved once, not per batch
    device_constants: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    # --- construction ----------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: dict | None = None, *, stats: Any = None, train: bool = True) -> Pipeline:
        """A pipeline from a recipe's augmentation table (keys: :data:`CONFIG_KEYS`).

        ``stats`` is the training split's :class:`~tinyzoo.data.cache.SplitStats` (or the
        ``DecodedSplit`` holding it); it is required by ``normalize = "dataset"`` or
        ``"pixel"`` and ``lighting_pca = "dataset"``. Bad keys or values raise
        :class:`TinyzooError` naming the key.
        """
        cfg = dict(cfg or {})
        for key in cfg:
            if key not in CONFIG_KEYS:
                close = difflib.get_close_matches(key, list(CONFIG_KEYS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(CONFIG_KEYS)}"
                raise TinyzooError(f"augmentation config: unknown key {key!r}{hint}")
        kwargs: dict[str, Any] = {}
        for key in ("crop", "padding"):
            if key in cfg:
                kwargs[key] = _int(cfg, key, minimum=0 if key == "padding" else 1)
        for key, choices in (("crop_mode", CROP_MODES), ("padding_mode", PADDING_MODES), ("normalize", NORMALIZE), ("eval_crop", EVAL_CROPS), ("lighting_pca", LIGHTING_PCA)):
            if key in cfg:
                kwargs[key] = _choice(cfg, key, choices)
        for key in ("flip", "channels_last"):
            if key in cfg:
                if not isinstance(cfg[key], bool):
                    raise TinyzooError(f"augmentation config: {key} must be true or false, got {cfg[key]!r}")
                kwargs[key] = cfg[key]
        for key in ("lighting", "mixup", "cutmix"):
            if key in cfg:
                kwargs[key] = _number(cfg, key)
        if "mix_prob" in cfg:
            kwargs["mix_prob"] = _number(cfg, "mix_prob", maximum=1.0)
        for key in ("scale", "ratio"):
            if key in cfg:
                kwargs[key] = _pair(cfg, key)
        for key in ("mean", "std"):
            if cfg.get(key) is not None:
                kwargs[key] = _triple(cfg, key)
        if "jitter" in cfg:
            kwargs.update(_jitter(cfg["jitter"]))
        if stats is not None and hasattr(stats, "stats"):
            stats = stats.stats
        pipeline = cls(**kwargs, train=train, stats=stats)
        pipeline.check()
        return pipeline

    def check(self) -> None:
        """Raise :class:`TinyzooError` for settings that cannot work together."""
        if self.crop_mode != "random" and self.padding:
            raise TinyzooError(f"augmentation config: padding works with crop_mode 'random' only, not {self.crop_mode!r}")
        if self.crop > 64 + 2 * self.padding and self.crop_mode != "resized":
            raise TinyzooError(f"augmentation config: crop {self.crop} is larger than the 64x64 image plus padding {self.padding} on each side")
        if self.normalize == "custom" and (self.mean is None or self.std is None):
            raise TinyzooError("augmentation config: normalize = 'custom' needs mean and std (3 numbers each, 0..1 scale)")
        if self.std is not None and min(self.std) <= 0:
            raise TinyzooError(f"augmentation config: std must be positive, got {list(self.std)}")
        needs_stats = [k for k, v in (("normalize", self.normalize), ("lighting_pca", self.lighting_pca)) if v in ("dataset", "pixel")]
        if needs_stats and self.stats is None:
            raise TinyzooError(
                f"augmentation config: {needs_stats[0]} = {getattr(self, needs_stats[0])!r} needs the training split's statistics: "
                "Pipeline.from_config(cfg, stats=open_split(root, 'train'))"
            )

    def to_config(self) -> dict:
        """The full config dict (every key, defaults filled in) that rebuilds this pipeline."""
        cfg: dict[str, Any] = {}
        for key in CONFIG_KEYS:
            if key == "jitter":
                cfg[key] = {k: getattr(self, k) for k in JITTER_KEYS}
            else:
                value = getattr(self, key)
                cfg[key] = list(value) if isinstance(value, tuple) else value
        return {k: v for k, v in cfg.items() if v is not None}

    def eval(self) -> Pipeline:
        """The evaluation view of this pipeline: same crop size and normalisation, nothing random."""
        return dataclasses.replace(self, train=False)

    @property
    def mixes(self) -> bool:
        """Whether training batches come with soft (N, C) targets."""
        return self.train and (self.mixup > 0 or self.cutmix > 0)

    # --- the call ----------------------------------------------------------------------

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None, *, labels: torch.Tensor | None = None, num_classes: int | None = None):
        """Augment a uint8 (N, H, W, 3) batch; returns float (N, 3, crop, crop), normalised.

        With ``labels`` (int64 (N,)) returns ``(images, targets)``: ``targets`` are the labels
        unchanged, or, when mixup/cutmix is on in training, float (N, num_classes) class
        probabilities (``F.cross_entropy`` takes either). ``generator`` is a CPU generator;
        ``None`` uses torch's global one.
        """
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
            raise TinyzooError(f"augmentation expects a uint8 (N, H, W, 3) batch, got {tuple(images.shape)} {images.dtype}")
        draw = Draw(generator, images.device)
        n = images.shape[0]
        if self.train and self.crop_mode == "resized":
            x, pixel_mean = self._random_resized(images, draw)
        elif not self.train:
            x, pixel_mean = self._eval_view(images)
        else:
            x, pixel_mean = self._gather_crops(images, draw)
        if self.train:
            x = self._colour(x, draw)
        x = self._normalize(x, pixel_mean, scaled=self.train and self._colour_on)
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        if labels is None:
            if self.mixes:
                raise TinyzooError("mixup/cutmix need the labels: call pipeline(images, generator, labels=labels, num_classes=C)")
            return x
        if self.mixes and labels.device.type == "cpu":
            check_mix_labels(labels)  # labels already on a GPU were checked by their loader: reading them here would wait for it
        labels = labels.to(images.device)
        if not self.mixes:
            return x, labels
        return self._mix(x, labels, num_classes, draw, n)

    def _constant(self, name: str, device: torch.device, make) -> torch.Tensor:
        """``make()`` (a CPU tensor) on ``device``, moved once per pipeline and device."""
        key = (name, str(device))
        value = self.device_constants.get(key)
        if value is None:
            value = self.device_constants[key] = make().to(device)
        return value

    # --- geometry ----------------------------------------------------------------------

    def _gather_crops(self, images: torch.Tensor, draw: Draw):
        """Random / ten / center crops with per-sample offsets and flips, gathered from one window view."""
        n, h, w, _ = images.shape
        c, p = self.crop, self.padding
        src = images.permute(0, 3, 1, 2)  # a view: NCHW indexing over the NHWC memory
        if p:
            src = F.pad(src, (p, p, p, p), mode=TORCH_PAD_MODES[self.padding_mode])
        if self.crop_mode == "random":
            oy = draw.randint(h + 2 * p - c + 1, n)
            ox = draw.randint(w + 2 * p - c + 1, n)
        elif self.crop_mode == "ten":
            corners = torch.tensor([[0, 0], [0, w - c], [h - c, 0], [h - c, w - c], [(h - c) // 2, (w - c) // 2]])
            pick = corners[draw.randint(5, n)]
            oy, ox = pick[:, 0], pick[:, 1]
        else:
            oy = torch.full((n,), (h - c) // 2)
            ox = torch.full((n,), (w - c) // 2)
        flips = draw.uniform(n) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        crops = crop_windows(src, oy, ox, c, flips, draw)
        pixel_mean = None
        if self.normalize == "pixel":
            pixel_mean = crop_windows(self._padded_pixel_mean(images.device, h, w, n), oy, ox, c, flips, draw)
        return self._to_float(crops), pixel_mean

    def _padded_pixel_mean(self, device, h: int, w: int, n: int) -> torch.Tensor:
        """The per-pixel mean image as an (n, 3, H + 2p, W + 2p) view, padded as the images are."""
        p = self.padding

        def make():
            mean = self._pixel_mean_source(h, w, p if self.padding_mode == "constant" else 0).permute(2, 0, 1)[None]
            if p and self.padding_mode != "constant":
                mean = F.pad(mean, (p, p, p, p), mode=TORCH_PAD_MODES[self.padding_mode])
            return mean

        return self._constant(f"padded-pixel-mean-{h}x{w}", device, make).expand(n, -1, -1, -1)

    def _to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> float32, contiguous NCHW (or channels-last) in the same pass."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.to(torch.float32, memory_format=memory_format)

    def _random_resized(self, images: torch.Tensor, draw: Draw):
        """Random-resized crops (bilinear) with flips folded into each sample's affine grid."""
        n, h, w, _ = images.shape
        area = draw.uniform(n) * (self.scale[1] - self.scale[0]) + self.scale[0]
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        ratio = torch.exp(draw.uniform(n) * (log_hi - log_lo) + log_lo)
        cw = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the image side
        ch = torch.sqrt(area / ratio).clamp(max=1.0)
        x0 = draw.uniform(n) * (1 - cw)
        y0 = draw.uniform(n) * (1 - ch)
        sign = torch.where(draw.uniform(n) < 0.5, -1.0, 1.0) if self.flip else torch.ones(n)
        # the affine map of each sample (x' = sx * x + tx, y' = sy * y + ty), drawn and computed on the CPU
        params = torch.stack([cw * sign, 2 * x0 + cw - 1, ch, 2 * y0 + ch - 1], dim=1)
        grid = axis_aligned_grid(draw.to_device(params), draw.to_device(pixel_centres(self.crop)))
        x = F.grid_sample(images.permute(0, 3, 1, 2).float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        pixel_mean = None
        if self.normalize == "pixel":
            mean = self._constant(f"pixel-mean-{h}x{w}", images.device, lambda: self._pixel_mean_source(h, w, 0).permute(2, 0, 1)[None])
            pixel_mean = F.grid_sample(mean.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return x, pixel_mean

    def _eval_view(self, images: torch.Tensor):
        """The deterministic view: center crop, or the whole image resized to ``crop``."""
        _n, h, w, _ = images.shape
        c = self.crop
        pixel_mean = None
        source = None
        if self.normalize == "pixel":
            source = self._constant(f"pixel-mean-{h}x{w}", images.device, lambda: self._pixel_mean_source(h, w, 0).permute(2, 0, 1)[None])
        if self.eval_crop == "resize" and (h, w) != (c, c):
            x = F.interpolate(images.permute(0, 3, 1, 2).float(), size=(c, c), mode="bilinear", antialias=True, align_corners=False)
            if source is not None:
                pixel_mean = F.interpolate(source, size=(c, c), mode="bilinear", antialias=True, align_corners=False)
            return x, pixel_mean
        c_h, c_w = min(c, h), min(c, w)
        y0, x0 = (h - c_h) // 2, (w - c_w) // 2
        x = self._to_float(images[:, y0:y0 + c_h, x0:x0 + c_w].permute(0, 3, 1, 2))
        if source is not None:
            pixel_mean = source[:, :, y0:y0 + c_h, x0:x0 + c_w]
        return x, pixel_mean

    def _pixel_mean_source(self, h: int, w: int, pad: int) -> torch.Tensor:
        """The per-pixel mean image (H+2pad, W+2pad, 3) on the CPU; padding takes the channel mean."""
        mean = torch.as_tensor(self.stats.pixel_mean, dtype=torch.float32)
        if tuple(mean.shape[:2]) != (h, w):
            raise TinyzooError(f"normalize = 'pixel': the per-pixel mean is {tuple(mean.shape[:2])} but the batch is {(h, w)}")
        if pad:
            fill = torch.as_tensor(self.stats.channel_mean, dtype=torch.float32)
            padded = fill.expand(h + 2 * pad, w + 2 * pad, 3).clone()
            padded[pad:pad + h, pad:pad + w] = mean
            mean = padded
        return mean

    # --- colour --------------------------------------------------------------------------

    @property
    def _colour_on(self) -> bool:
        return bool(self.brightness or self.contrast or self.saturation or self.lighting)

    def _colour(self, x: torch.Tensor, draw: Draw) -> torch.Tensor:
        """Brightness/contrast/saturation jitter (random order per batch) then PCA lighting, on 0..1."""
        if not self._colour_on:
            return x
        n = x.shape[0]
        x = x.mul_(1 / 255)
        ops = [op for op in JITTER_KEYS if getattr(self, op)]
        order = draw.permutation(len(ops)).tolist() if ops else []
        for i in order:
            op = ops[i]
            v = getattr(self, op)
            f = draw.to_device((draw.uniform(n) * 2 * v + (1 - v)).clamp(min=0).view(n, 1, 1, 1))
            if op == "brightness":
                x.mul_(f)
            elif op == "contrast":
                m = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
                x.mul_(f).add_(m * (1 - f))
            else:
                gray = grayscale(x)  # taken before x is scaled in place
                x.mul_(f).add_(gray * (1 - f))
            x.clamp_(0, 1)
        if self.lighting:
            if self.lighting_pca == "dataset":
                eigval, eigvec = self.stats.eigval, self.stats.eigvec
            else:
                eigval, eigvec = IMAGENET_EIGVAL, IMAGENET_EIGVEC
            eigval = torch.as_tensor(eigval, dtype=torch.float32)
            eigvec = torch.as_tensor(eigvec, dtype=torch.float32)
            alpha = draw.normal((n, 3)) * self.lighting
            rgb = (alpha * eigval) @ eigvec.T  # rgb[b, i] = sum_j eigvec[i, j] * alpha[b, j] * eigval[j]
            x.add_(draw.to_device(rgb.view(n, 3, 1, 1)))
        return x

    def _normalize(self, x: torch.Tensor, pixel_mean: torch.Tensor | None, *, scaled: bool) -> torch.Tensor:
        """(x - mean) / std with x on 0..255 (or 0..1 when ``scaled``): :func:`tinyzoo.preprocess.normalise_`."""
        to_unit = 1.0 if scaled else 1 / 255
        if self.normalize == "none":
            return x if scaled else x.mul_(to_unit)
        # the constants live on the device once: no host-to-device copy per batch
        mean, std = self._constant("channel-mean-std", x.device, lambda: torch.as_tensor(self.channel_mean_std(), dtype=torch.float32))
        return normalise_(x, mean, std, scale=to_unit, pixel_mean=pixel_mean if self.normalize == "pixel" else None)

    def channel_mean_std(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """The per-channel mean and std (0..1 scale) this pipeline normalises with: ImageNet's,
        the given ones (``custom``), the training split's (``dataset``; ``pixel`` divides by its
        std), or 0 and 1 (``none``)."""
        if self.normalize == "none":
            return NO_SHIFT, NO_SCALE
        if self.normalize in ("dataset", "pixel"):
            pair = self.stats.channel_mean, self.stats.channel_std
        elif self.normalize == "custom":
            pair = self.mean, self.std
        else:
            pair = self.mean or IMAGENET_MEAN, self.std or IMAGENET_STD
        (r, g, b), (sr, sg, sb) = pair  # three channels each: config triples or the split's RGB statistics
        return (float(r), float(g), float(b)), (float(sr), float(sg), float(sb))

    def preprocess(self) -> Preprocess:
        """This pipeline's evaluation view as a :class:`~tinyzoo.preprocess.Preprocess`: what the
        trainer writes into a model's config.json (``eval_crop = "resize"`` resizes the whole
        image to the crop; ``pixel`` carries the training split's mean image)."""
        mean, std = self.channel_mean_std()
        resize = self.crop if self.eval_crop == "resize" else resize_for(self.crop)
        pixel_mean = torch.as_tensor(self.stats.pixel_mean, dtype=torch.float32) if self.normalize == "pixel" else None
        return Preprocess(self.crop, resize, "bilinear", self.normalize, mean, std, pixel_mean=pixel_mean)

    # --- mixing ----------------------------------------------------------------------------

    def _mix(self, x: torch.Tensor, labels: torch.Tensor, num_classes: int | None, draw: Draw, n: int):
        """Mixup or cutmix with one lambda and one partner permutation per batch; soft targets."""
        if num_classes is None:
            raise TinyzooError("mixup/cutmix need num_classes to build soft targets")
        targets = F.one_hot(labels.long(), num_classes).float()
        use_mix = draw.scalar() < self.mix_prob
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or draw.scalar() < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = draw.beta(alpha)
        perm = draw.to_device(draw.permutation(n))
        if not use_mix:
            return x, targets
        if use_cutmix:
            h, w = x.shape[-2:]
            cut = math.sqrt(1 - lam)
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = int(draw.randint(h, 1)[0]), int(draw.randint(w, 1)[0])
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        else:
            partner = x[perm]  # a copy, taken before x is scaled in place
            x = x.mul_(lam).add_(partner, alpha=1 - lam)
        partner_targets = targets[perm]
        return x, targets.mul_(lam).add_(partner_targets, alpha=1 - lam)


def check_mix_labels(labels) -> None:
    """Mixing needs a label for every image: raise for a split without them (the test split's -1)."""
    if len(labels) and int(labels.min()) < 0:
        raise TinyzooError("mixup/cutmix need labels; this split has none (test split?)")


class Draw:
    """Random numbers drawn on the CPU from one generator; :meth:`to_device` ships them to the batch.

    Every draw stays on the CPU, so the host can decide with it without waiting for a GPU;
    :meth:`to_device` copies through pinned memory without blocking on CUDA.
    """

    def __init__(self, generator: torch.Generator | None, device: torch.device):
        self.generator, self.device = generator, device

    def uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator)

    def scalar(self) -> float:
        """One uniform number (the same draw as ``uniform(1)[0]``)."""
        return float(torch.rand(1, generator=self.generator)[0])

    def randint(self, high: int, n: int) -> torch.Tensor:
        return torch.randint(0, max(high, 1), (n,), generator=self.generator)

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator)

    def permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator)

    def beta(self, alpha: float) -> float:
        """One Beta(alpha, alpha) sample (torch's Beta takes no generator, so numpy draws it from a seed we draw)."""
        import numpy as np

        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator)[0])
        return float(np.random.default_rng(seed).beta(alpha, alpha))

    def to_device(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` (a CPU tensor) on the batch's device; on CUDA an asynchronous copy from pinned memory."""
        if self.device.type == "cpu":
            return values
        if self.device.type == "cuda":
            return values.pin_memory().to(self.device, non_blocking=True)
        return values.to(self.device)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma (N, 1, H, W) of an (N, 3, H, W) batch, ITU-R 601 weights as torchvision."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def crop_windows(src: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, size: int, flips: torch.Tensor, draw: Draw) -> torch.Tensor:
    """The ``size`` x ``size`` window at (oy[i], ox[i]) of each ``src[i]`` (N, C, H, W), mirrored where ``flips``.

    ``oy``, ``ox`` (int64) and ``flips`` (bool) are CPU tensors. On the CPU the windows are numpy
    views copied once (:func:`slice_windows`); on a GPU one gather kernel (:func:`take_windows`).
    Both give the same values; the result is an (N, C, size, size) view.
    """
    if src.device.type == "cpu":
        return slice_windows(src, oy, ox, size, flips)
    return take_windows(src, draw.to_device(oy), draw.to_device(ox), size, draw.to_device(flips))


def slice_windows(src: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, size: int, flips: torch.Tensor) -> torch.Tensor:
    """:func:`crop_windows` on the CPU: one numpy view per window (mirrored by a negative stride), stacked in one copy.

    The stack is channels-innermost (N, size, size, C), which the float conversion reads fastest.
    """
    import numpy as np

    array = src.permute(0, 2, 3, 1).numpy()  # NHWC view of whatever strides src has
    views = []
    for i, (y, x, flip) in enumerate(zip(oy.tolist(), ox.tolist(), flips.tolist())):
        cols = slice(x + size - 1, x - 1 if x else None, -1) if flip else slice(x, x + size)
        views.append(array[i, y:y + size, cols])
    return torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2)


def take_windows(src: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, size: int, flips: torch.Tensor) -> torch.Tensor:
    """:func:`crop_windows` as tensor ops on ``src``'s device, nothing read back to the host.

    One advanced index over the unfolded view copies every window at once into
    (N, size, size, C); mirrored windows are chosen with ``torch.where`` (no data-dependent
    shapes, so no synchronisation).
    """
    windows = src.unfold(2, size, 1).unfold(3, size, 1)  # (N, C, H-size+1, W-size+1, size, size), no copy
    crops = windows.permute(0, 2, 3, 4, 5, 1)[torch.arange(src.shape[0], device=src.device), oy, ox]  # (N, size, size, C)
    crops = torch.where(flips.view(-1, 1, 1, 1), crops.flip(2), crops)
    return crops.permute(0, 3, 1, 2)


def pixel_centres(size: int) -> torch.Tensor:
    """The ``size`` output pixel centres on the -1..1 scale, as ``F.affine_grid`` places them (``align_corners=False``)."""
    return torch.linspace(-1, 1, size) * (size - 1) / size


def axis_aligned_grid(params: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """The sampling grid (N, size, size, 2) of ``F.affine_grid`` for maps without rotation or shear.

    ``params`` (N, 4) holds ``(sx, tx, sy, ty)``: x' = sx * x + tx, y' = sy * y + ty over the
    output's pixel centres ``base`` (:func:`pixel_centres`, on ``params``' device). Element-wise,
    where ``affine_grid``'s batched matrix product may run in TF32 on a GPU and move every crop by
    a fraction of a pixel.
    """
    n, size = params.shape[0], base.shape[0]
    sx, tx, sy, ty = params.unbind(1)
    gx = sx[:, None] * base[None, :] + tx[:, None]  # (N, size): depends on the column only
    gy = sy[:, None] * base[None, :] + ty[:, None]  # (N, size): on the row only
    return torch.stack([gx[:, None, :].expand(n, size, size), gy[:, :, None].expand(n, size, size)], dim=-1)


# --- config parsing ----------------------------------------------------------------------


def _int(cfg: dict, key: str, *, minimum: int) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TinyzooError(f"augmentation config: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(cfg: dict, key: str, *, maximum: float | None = None) -> float:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (maximum is not None and value > maximum):
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise TinyzooError(f"augmentation config: {key} must be a number >= 0{bound}, got {value!r}")
    return float(value)


def _choice(cfg: dict, key: str, choices: tuple[str, ...]) -> str:
    value = cfg[key]
    if value not in choices:
        raise TinyzooError(f"augmentation config: {key} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _pair(cfg: dict, key: str) -> tuple[float, float]:
    value = cfg[key]
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in value) or value[0] > value[1]:
        raise TinyzooError(f"augmentation config: {key} must be [low, high] with 0 < low <= high, got {value!r}")
    return float(value[0]), float(value[1])


def _triple(cfg: dict, key: str) -> tuple[float, float, float]:
    value = cfg[key]
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise TinyzooError(f"augmentation config: {key} must be 3 numbers (R, G, B on the 0..1 scale), got {value!r}")
    return float(value[0]), float(value[1]), float(value[2])


def _jitter(value: Any) -> dict[str, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {k: _number({"jitter": value}, "jitter") for k in JITTER_KEYS}
    if not isinstance(value, dict):
        raise TinyzooError(f"augmentation config: jitter must be a number or a table of {', '.join(JITTER_KEYS)}, got {value!r}")
    for key in value:
        if key not in JITTER_KEYS:
            raise TinyzooError(f"augmentation config: unknown key jitter.{key}; expected {', '.join(JITTER_KEYS)}")
    return {k: _number(value, k) for k in value}
