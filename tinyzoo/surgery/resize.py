"""Upsampling the input in front of a network (``--stem resize``: Kim's first runs, Milani's 64 -> 299).

:class:`InputResize` is the layer; :func:`adapt_resize` is the ``resize`` adapter that puts
it in front of a network without changing the network's layer names.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from tinyzoo.adapt_report import Changes
from tinyzoo.errors import TinyzooError
from tinyzoo.specs import CROP_SIZE, RESIZE_MODES


class InputResize(nn.Module):
    """Resizes a ``(B, C, H, W)`` batch to ``(B, C, size, size)``; a batch already that size passes unchanged.

    ``mode`` is ``"bilinear"`` or ``"bicubic"`` (``align_corners=False``); ``antialias`` only
    matters when shrinking. Resizing commutes with per-channel normalisation (the
    interpolation weights sum to one), so it can sit after the normaliser, as the first layer.
    """

    def __init__(self, size: int, mode: str = "bilinear", antialias: bool = False):
        super().__init__()
        if mode not in RESIZE_MODES:
            raise TinyzooError(f"unknown input resize mode {mode!r}; choose one of: {', '.join(RESIZE_MODES)}")
        if not isinstance(size, int) or size <= 0:
            raise TinyzooError(f"input resize size must be a positive int, not {size!r}")
        self.size, self.mode, self.antialias = size, mode, antialias

    def output_size(self, size: int) -> int:
        return self.size

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode=self.mode, align_corners=False, antialias=self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode!r}, antialias={self.antialias}"


class InputUpsample(nn.Module):
    """Upsamples a ``(B, C, H, W)`` batch by a whole ``scale`` (``--stem small-up2``: 56 -> 112, 64 -> 128).

    ``mode`` is ``"bilinear"`` or ``"bicubic"`` (``align_corners=False``). Like
    :class:`InputResize`, it commutes with per-channel normalisation and holds no tensors.
    """

    def __init__(self, scale: int, mode: str = "bicubic"):
        super().__init__()
        if mode not in RESIZE_MODES:
            raise TinyzooError(f"unknown input resize mode {mode!r}; choose one of: {', '.join(RESIZE_MODES)}")
        if not isinstance(scale, int) or scale < 1:
            raise TinyzooError(f"input upsampling scale must be a positive int, not {scale!r}")
        self.scale, self.mode = scale, mode

    def output_size(self, size: int) -> int:
        return size * self.scale

    def forward(self, x: Tensor) -> Tensor:
        if self.scale == 1:
            return x
        return F.interpolate(x, scale_factor=self.scale, mode=self.mode, align_corners=False)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, mode={self.mode!r}"


# What ``attach_input_resize`` puts in front: both answer ``output_size(size)``.
InputLayer = InputResize | InputUpsample


def _input_resize_pre_hook(module, args):
    # The resizing layer sits in front of everything the network does.
    return (module.input_resize(args[0]), *args[1:])


def attach_input_resize(model: nn.Module, layer: InputLayer) -> None:
    """Register ``layer`` as ``model.input_resize`` and run it on the input by a forward pre-hook,
    so that layer names and state-dict keys stay the network's (``conv1.weight``)."""
    if hasattr(model, "input_resize"):
        raise TinyzooError(f"{type(model).__name__} already has an input_resize layer; a model takes one")
    model.input_resize = layer
    model.register_forward_pre_hook(_input_resize_pre_hook)


def detach_input_resize(model: nn.Module) -> InputLayer | None:
    """Undo :func:`attach_input_resize`; returns the layer (``None`` when there was none)."""
    layer: InputLayer | None = getattr(model, "input_resize", None)
    if layer is None:
        return None
    for key, hook in list(model._forward_pre_hooks.items()):
        if hook is _input_resize_pre_hook:
            del model._forward_pre_hooks[key]
    del model.input_resize
    return layer


def adapt_resize(model: nn.Module, spec, *, size: int, mode: str = "bicubic") -> tuple[nn.Module, Changes]:
    """The ``resize`` adapter: the network unchanged, its input upsampled to ``size`` first.

    The :class:`InputResize` layer is registered as ``model.input_resize`` (no tensors) and run
    by a forward pre-hook, so state-dict keys and layer names stay the architecture's.
    """
    if mode not in RESIZE_MODES:
        raise TinyzooError(f"option resize_mode={mode!r} is not one of: {', '.join(RESIZE_MODES)}")
    if hasattr(model, "input_resize"):
        raise TinyzooError(f"{spec.name!r} already has an input_resize layer; apply the resize adapter once")
    attach_input_resize(model, InputResize(size, mode))
    changes = Changes(input_size=CROP_SIZE)
    changes.note(f"input upsampled ({mode}) to {size}x{size} before the network")
    return model, changes


def remove_resize(model: nn.Module) -> bool:
    """Undo :func:`adapt_resize` on ``model``; returns whether it had one."""
    return detach_input_resize(model) is not None
