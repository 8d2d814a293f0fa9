"""Resampling convolution kernels to a new spatial size, with what each filter keeps.

Two methods, for a weight of shape ``(out, in, kh, kw)`` going to ``(out, in, nh, nw)``:

``bicubic`` (Kim's stem initialisation)
    ``F.interpolate(weight, (nh, nw), mode="bicubic", align_corners=False)``, then, when
    ``rescale`` is on, multiplied by ``(kh * kw) / (nh * nw)``. Bicubic interpolation maps a
    constant kernel to the same constant, so without the factor a 7x7 -> 3x3 filter keeps only
    about 9/49 of its sum, i.e. of its response to a constant (or slowly varying) input. The
    factor restores that sum on average over filters (exactly for a constant kernel); it is the
    same factor the adjoint of an area resize would carry. A per-filter sum match is not used:
    zero-sum filters (the Gabor-like majority of a pretrained stem) would divide by ~0.

``pi`` (pseudo-inverse resize, FlexiViT)
    Let ``B`` be the ``(nh*nw, kh*kw)`` matrix of ``resize``, the antialiased bicubic resize
    of a ``kh x kw`` patch to ``nh x nw`` (see :func:`resize_matrix`). The new filter is
    ``w' = pinv(B^T) w``, the least-squares solution of ``B^T w' = w``. What holds exactly:

    - for every patch ``x`` in the row space of ``B`` (the image of ``B^T``):
      ``<resize(x), w'> == <x, w>``; for every ``x``: ``<resize(x), w'> == <x, P w>`` with ``P``
      the orthogonal projector onto that row space (the part of ``w`` the resize can see);
    - when the kernel grows (``nh >= kh`` and ``nw >= kw``) the row space is everything, so
      ``<resize(x), w'> == <x, w>`` for every ``x``.

    The filter's response to a resized patch therefore equals the old filter's response to the
    original patch; ``rescale`` has no meaning here and is ignored.

Down to ``1 x 1`` (a 4x4/4 patchify stem made 1x1/1) both methods give the **sum over the
patch**: a single tap keeps no shape, only the response to flat input. For ``pi`` that is the
pseudo-inverse of the area (box) resize, whose row space is the constant patch, so the
response to a constant patch is exact; for ``bicubic`` it is the patch mean times the area
ratio (the mean alone with ``rescale=False``). Bicubic interpolation to one pixel would
sample only the patch centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tinyzoo.errors import TinyzooError
from tinyzoo.specs import KERNEL_RESIZES

ALIASES = {"pinv": "pi"}  # other spellings a user may write
METHODS = tuple(m for m in KERNEL_RESIZES if m not in ALIASES)  # the canonical spellings
# The method ``tinyzoo.create(kernel_resize=None)`` uses, per architecture family; chosen by the
# measurement in docs/fidelity.md ("Kernel resampling"). Families not listed get FALLBACK_KERNEL_RESIZE.
DEFAULT_KERNEL_RESIZE = {
    "resnet": "pi",
    "densenet": "pi",
    "googlenet": "pi",
    "alexnet": "pi",
    "vit": "pi",
}
FALLBACK_KERNEL_RESIZE = "pi"


def canonical_method(method: str) -> str:
    """``method`` in its canonical spelling (``pinv`` -> ``pi``); a one-line error when unknown."""
    name = ALIASES.get(method, method)
    if name not in METHODS:
        known = ", ".join(METHODS + tuple(ALIASES))
        raise TinyzooError(f"unknown kernel resize method {method!r}; choose one of: {known}")
    return name


def default_kernel_resize(family: str) -> str:
    """The kernel resampling ``family``'s ``stem small`` uses unless told otherwise (docs/fidelity.md)."""
    return DEFAULT_KERNEL_RESIZE.get(family, FALLBACK_KERNEL_RESIZE)


@dataclass(frozen=True)
class KernelStats:
    """What a resampled kernel kept of the old one, per output filter and summarised.

    ``sum_ratio`` and ``norm_ratio`` are per-filter tensors (shape ``(out,)``, float64):
    new filter sum / old filter sum (a filter is one output channel: all its input channels
    and taps) and new L2 norm / old L2 norm. ``sum_kept`` and ``norm_kept`` summarise them as
    plain floats: ``mean``, ``median``, ``min``, ``max`` over filters, and ``overall`` (for the
    sum, the least-squares slope ``sum(s_new * s_old) / sum(s_old ** 2)``, robust to zero-sum
    filters; for the norm, ``||W_new|| / ||W_old||`` over the whole weight). Filters whose old
    sum is below 1e-6 of their absolute sum have no meaningful sum ratio: they are NaN in
    ``sum_ratio``, left out of the summary and counted in ``sum_kept["zero_sum_filters"]``.
    ``scale`` is the factor applied after interpolation (1.0 for ``pi`` and without rescale).
    """

    method: str
    old_size: tuple[int, int]
    new_size: tuple[int, int]
    scale: float
    sum_kept: dict[str, float]
    norm_kept: dict[str, float]
    sum_ratio: Tensor = field(repr=False)
    norm_ratio: Tensor = field(repr=False)

    def to_dict(self) -> dict:
        """JSON-ready summary: plain floats, ints and lists (no tensors)."""
        return {
            "method": self.method,
            "old_size": list(self.old_size),
            "new_size": list(self.new_size),
            "scale": self.scale,
            "sum_kept": dict(self.sum_kept),
            "norm_kept": dict(self.norm_kept),
        }


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
        raise TinyzooError(f"kernel size must be a positive int or a pair of them, not {size!r}")
    return pair


def resize_matrix(
    old_size: int | tuple[int, int],
    new_size: int | tuple[int, int],
    mode: str = "bicubic",
    antialias: bool = True,
) -> Tensor:
    """The ``(nh*nw, kh*kw)`` float64 matrix ``B`` with ``B @ x.flatten() == resize(x).flatten()``.

    ``resize`` is ``F.interpolate(x, new_size, mode=mode, align_corners=False,
    antialias=antialias)`` on a single-channel ``kh x kw`` patch; row-major flattening.
    """
    (kh, kw), (nh, nw) = _pair(old_size), _pair(new_size)
    # Resizing every basis patch at once gives the operator's columns.
    basis = torch.eye(kh * kw, dtype=torch.float64).reshape(kh * kw, 1, kh, kw)
    columns = F.interpolate(basis, size=(nh, nw), mode=mode, align_corners=False, antialias=antialias)
    return columns.reshape(kh * kw, nh * nw).T.contiguous()


def _summary(values: Tensor) -> dict[str, float]:
    finite = values[torch.isfinite(values)]
    if finite.numel() == 0:
        return {"mean": math.nan, "median": math.nan, "min": math.nan, "max": math.nan}
    return {
        "mean": float(finite.mean()),
        "median": float(finite.median()),
        "min": float(finite.min()),
        "max": float(finite.max()),
    }


def kernel_stats(
    old: Tensor, new: Tensor, method: str, scale: float
) -> KernelStats:
    """Sum and norm kept per output filter of ``new`` relative to ``old`` (both 4-D weights).

    Meta tensors (shape-only skeletons) have no values: every ratio is then NaN.
    """
    if old.is_meta or new.is_meta:
        old, new = torch.full(old.shape, math.nan), torch.full(new.shape, math.nan)
    old64, new64 = old.detach().double().flatten(1), new.detach().double().flatten(1)
    s_old, s_new = old64.sum(1), new64.sum(1)
    zero_sum = s_old.abs() <= 1e-6 * old64.abs().sum(1)
    sum_ratio = torch.where(zero_sum, torch.full_like(s_old, math.nan), s_new / s_old)
    n_old, n_new = old64.norm(dim=1), new64.norm(dim=1)
    norm_ratio = torch.where(n_old > 0, n_new / n_old, torch.full_like(n_old, math.nan))
    denominator = float((s_old * s_old).sum())
    sum_kept = _summary(sum_ratio)
    sum_kept["overall"] = float((s_new * s_old).sum()) / denominator if denominator > 0 else math.nan
    sum_kept["zero_sum_filters"] = int(zero_sum.sum())
    norm_kept = _summary(norm_ratio)
    total = float(old64.norm())
    norm_kept["overall"] = float(new64.norm()) / total if total > 0 else math.nan
    return KernelStats(
        method=method,
        old_size=(old.shape[-2], old.shape[-1]),
        new_size=(new.shape[-2], new.shape[-1]),
        scale=float(scale),
        sum_kept=sum_kept,
        norm_kept=norm_kept,
        sum_ratio=sum_ratio,
        norm_ratio=norm_ratio,
    )


def resample_kernel(
    weight: Tensor,
    size: int | tuple[int, int],
    method: str = "bicubic",
    rescale: bool = True,
) -> tuple[Tensor, KernelStats]:
    """A conv weight ``(out, in, kh, kw)`` resampled to ``(out, in, *size)``, and its stats.

    Returns a new tensor (same dtype and device as ``weight``, not a parameter) and a
    :class:`KernelStats`. ``method`` is ``"bicubic"`` (interpolation, times
    ``(kh*kw)/(nh*nw)`` when ``rescale``) or ``"pi"`` (pseudo-inverse resize; ``rescale``
    ignored; ``"pinv"`` is the same). The module docstring states exactly what each keeps.
    """
    method = canonical_method(method)
    if weight.dim() != 4:
        raise TinyzooError(f"resample_kernel needs a conv weight (out, in, kh, kw), got shape {tuple(weight.shape)}")
    new_size = _pair(size)
    kh, kw = weight.shape[-2:]
    nh, nw = new_size
    source = weight.detach()
    if (nh, nw) == (1, 1):
        # One tap: the box resize (the patch mean); its pseudo-inverse and the rescaled mean are the sum.
        scale = float(kh * kw) if method == "pi" or rescale else 1.0
        new = (source.double().mean(dim=(-2, -1), keepdim=True) * scale).to(weight.dtype)
        return new, kernel_stats(source, new, method, scale if method == "bicubic" else 1.0)
    if method == "bicubic":
        # Half precision has no CPU bicubic kernel everywhere; float32 is exact enough.
        work = source if source.dtype in (torch.float32, torch.float64) else source.float()
        new = F.interpolate(work, size=new_size, mode="bicubic", align_corners=False)
        scale = (kh * kw) / (nh * nw) if rescale else 1.0
        if scale != 1.0:
            new = new * scale
        new = new.to(weight.dtype)
    else:
        scale = 1.0
        # pinv(B^T) solves B^T w' = w in the least-squares sense, for all filters at once.
        solve = torch.linalg.pinv(resize_matrix((kh, kw), new_size).T).to(source.device)
        flat = source.reshape(-1, kh * kw).double()
        new = (flat @ solve.T).reshape(*source.shape[:2], nh, nw).to(weight.dtype)
    return new, kernel_stats(source, new, method, scale)


def plain_conv(module: nn.Module) -> nn.Conv2d:
    """``module`` when it is a plain ``nn.Conv2d`` (groups=1, dilation=1); a one-line refusal otherwise."""
    if not isinstance(module, nn.Conv2d):
        raise TinyzooError(f"stem small needs a single nn.Conv2d as first conv, found {type(module).__name__}")
    if module.groups != 1 or module.dilation != (1, 1):
        raise TinyzooError("stem small resamples only plain convolutions (groups=1, dilation=1)")
    return module


def resampled_conv(
    conv: nn.Module, kernel: int, stride: int, padding: int, method: str = "bicubic"
) -> tuple[nn.Conv2d, dict | None]:
    """A new ``kernel x kernel`` conv with ``stride`` and ``padding`` whose weight is ``conv``'s
    resampled by ``method`` (``bicubic`` with rescaling, or ``pi``); bias copied.

    Returns the conv and the kernel stats as a dict (``None`` when the size is unchanged and
    the weight is shared as it is). ``conv`` is not modified; anything but a
    :func:`plain_conv` is refused.
    """
    conv = plain_conv(conv)
    weight = conv.weight
    new = nn.Conv2d(
        conv.in_channels, conv.out_channels, kernel, stride, padding,
        bias=conv.bias is not None, padding_mode=conv.padding_mode, device=weight.device, dtype=weight.dtype,
    )
    stats = None
    if tuple(weight.shape[-2:]) == (kernel, kernel):
        new.weight = conv.weight
    else:
        values, kernel_stats = resample_kernel(weight.detach(), kernel, method, rescale=True)
        new.weight = nn.Parameter(values.contiguous(), requires_grad=weight.requires_grad)
        stats = kernel_stats.to_dict() if not weight.is_meta else None
    if conv.bias is not None:
        new.bias = conv.bias
    new.train(conv.training)
    return new, stats
