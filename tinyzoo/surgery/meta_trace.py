"""Running a network on the meta device: shapes only, no memory, no arithmetic.

:func:`meta_forward` traces a network's forward pass on one meta image (the geometry rule,
the coverage sweep and the stem adapters measure feature-map sizes with it); inside
:func:`shapes_only`, operations that cannot change a shape hand their input back, which
makes tracing and building on the meta device about three times faster.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _shape_preserving():
    """Functions whose result has their first argument's shape and dtype: norms, elementwise
    activations, and the in-place value updates of weight initialisation. On meta tensors, where
    only shapes exist, they can hand their input back; torch would decompose each into many small
    meta operations (tracing and building were three times slower)."""
    import torch.nn.functional as F

    names = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "relu", "relu6", "silu", "gelu", "mish",
             "hardswish", "hardsigmoid", "hardtanh", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "dropout")
    found = {getattr(F, n) for n in names if hasattr(F, n)}
    found |= {getattr(torch, n) for n in ("relu", "sigmoid", "tanh", "softmax") if hasattr(torch, n)}
    in_place = ("uniform_", "normal_", "erfinv_", "mul_", "add_", "sub_", "div_", "clamp_", "fill_", "zero_",
                "copy_", "exp_", "sqrt_", "relu_", "sigmoid_", "neg_", "abs_", "bernoulli_", "random_")
    found |= {getattr(torch.Tensor, n) for n in ("relu", "sigmoid", "tanh", "softmax", *in_place) if hasattr(torch.Tensor, n)}
    return frozenset(found)


class _ShapesOnly(torch.overrides.TorchFunctionMode):
    """Shape-preserving functions (see :func:`_shape_preserving`) return their meta input unchanged."""

    functions = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            if func in self.functions:
                return args[0]
            if func is torch.nn.functional.interpolate:
                return _interpolated(*args, **kwargs)
        return func(*args, **kwargs)


def _interpolated(x, size=None, scale_factor=None, *args, **kwargs):
    """The meta result of ``F.interpolate(x, size, scale_factor, ...)``: only its shape."""
    dims = x.dim() - 2
    if size is not None:
        out = [size] * dims if isinstance(size, int) else list(size)
    else:
        factors = list(scale_factor) if isinstance(scale_factor, (tuple, list)) else [scale_factor] * dims
        out = [int(math.floor(side * factor)) for side, factor in zip(x.shape[2:], factors)]
    return x.new_empty((*x.shape[:2], *out))


def shapes_only() -> _ShapesOnly:
    """A context in which work on meta tensors skips what cannot change a shape (tracing, building)."""
    if _ShapesOnly.functions is None:
        _ShapesOnly.functions = _shape_preserving()
    return _ShapesOnly()


def meta_forward(model: nn.Module, size: int, hooks=()) -> object:
    """``model`` run on one ``size`` x ``size`` meta input, every parameter and buffer as a meta
    tensor (no arithmetic, nothing copied); ``hooks`` are ``(module, pre, post)`` triples."""
    # One name per tensor: functional_call ties the aliases of a shared weight itself.
    tensors = {k: torch.empty_like(v, device="meta") for k, v in model.named_parameters()}
    tensors.update({k: torch.empty_like(v, device="meta") for k, v in model.named_buffers()})
    handles = []
    for module, pre, post in hooks:
        if pre is not None:
            handles.append(module.register_forward_pre_hook(pre))
        if post is not None:
            handles.append(module.register_forward_hook(post))
    channels = _in_channels(model)
    try:
        with torch.no_grad(), torch.device("meta"), shapes_only():
            return torch.func.functional_call(model, tensors, (torch.empty(1, channels, size, size),), strict=False)
    finally:
        for handle in handles:
            handle.remove()


def _in_channels(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3
