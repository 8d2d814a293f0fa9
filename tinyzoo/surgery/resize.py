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

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode=self.mode, align_corners=False, antialias=self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode!r}, antialias={self.antialias}"


def _resize_pre_hook(module: nn.Module, args):
    # The upsampling layer sits in front of everything the network does.
    return (module.input_resize(args[0]), *args[1:])


def adapt_resize(model: nn.Module, spec, *, size: int, mode: str = "bicubic") -> tuple[nn.Module, Changes]:
    """The ``resize`` adapter: the network unchanged, its input upsampled to ``size`` first.

    The :class:`InputResize` layer is registered as ``model.input_resize`` (no tensors) and run
    by a forward pre-hook, so state-dict keys and layer names stay the architecture's.
    """
    if mode not in RESIZE_MODES:
        raise TinyzooError(f"option resize_mode={mode!r} is not one of: {', '.join(RESIZE_MODES)}")
    if hasattr(model, "input_resize"):
        raise TinyzooError(f"{spec.name!r} already has an input_resize layer; apply the resize adapter once")
    model.input_resize = InputResize(size, mode)
    model.register_forward_pre_hook(_resize_pre_hook)
    changes = Changes(input_size=CROP_SIZE)
    changes.note(f"input upsampled ({mode}) to {size}x{size} before the network")
    return model, changes


def remove_resize(model: nn.Module) -> bool:
    """Undo :func:`adapt_resize` on ``model``; returns whether it had one."""
    if not hasattr(model, "input_resize"):
        return False
    for key, hook in list(model._forward_pre_hooks.items()):
        if hook is _resize_pre_hook:
            del model._forward_pre_hooks[key]
    del model.input_resize
    return True
