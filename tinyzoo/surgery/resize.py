"""Upsampling the input in front of a network (``--stem resize``: Kim's first runs, Milani's 64 -> 299)."""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from tinyzoo.errors import TinyzooError

MODES = ("bilinear", "bicubic")


class InputResize(nn.Module):
    """Resizes a ``(B, C, H, W)`` batch to ``(B, C, size, size)``; a batch already that size passes unchanged.

    ``mode`` is ``"bilinear"`` or ``"bicubic"`` (``align_corners=False``); ``antialias`` only
    matters when shrinking. Resizing commutes with per-channel normalisation (the
    interpolation weights sum to one), so it can sit after the normaliser, as the first layer.
    """

    def __init__(self, size: int, mode: str = "bilinear", antialias: bool = False):
        super().__init__()
        if mode not in MODES:
            raise TinyzooError(f"unknown input resize mode {mode!r}; choose one of: {', '.join(MODES)}")
        if not isinstance(size, int) or size <= 0:
            raise TinyzooError(f"input resize size must be a positive int, not {size!r}")
        self.size, self.mode, self.antialias = size, mode, antialias

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode=self.mode, align_corners=False, antialias=self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode!r}, antialias={self.antialias}"


def with_input_resize(model: nn.Module, size: int, mode: str = "bilinear", *, antialias: bool = False) -> nn.Sequential:
    """``nn.Sequential(resize=InputResize(size, mode, antialias), net=model)``.

    The model is wrapped, not copied. Its state-dict keys gain the prefix ``net.``
    (``net.conv1.weight``); ``resize`` has no parameters or buffers, so it adds no keys.
    """
    return nn.Sequential(OrderedDict(resize=InputResize(size, mode, antialias), net=model))
