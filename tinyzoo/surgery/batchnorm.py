"""BatchNorm recalibration after surgery: new running statistics for the new input size.

A stem change (or an input of another size) moves the statistics of every later BatchNorm's
input away from the running mean and variance it was trained with. Two ways to set them
again, both without gradients and without touching any weight:

``plain``
    Re-estimation: each BatchNorm's running mean and variance become the mean and the
    (population) variance of its input over the calibration images at the new size. The
    statistics of the calibration images themselves are baked in, their content and domain
    included.

``relative``
    Moment matching against the original network. With the stored statistics ``(m0, v0)``,
    the original network's input statistics at its native size ``(mt, vt)`` and the adapted
    network's at the new size ``(ms, vs)``, all on the same calibration images::

        var'  = (v0 + eps) * vs / vt - eps
        mean' = ms - sqrt(vs / vt) * (mt - m0)

    Each BatchNorm's output on the calibration images then has exactly the mean and variance
    that the original network's same BatchNorm output has at native size on the same images.
    Only the difference the adaptation makes is corrected; how the calibration images differ
    from ImageNet (``mt != m0``) cancels instead of being baked in.

Both gather statistics in one forward pass in eval mode: a pre-hook on each BatchNorm sets its
statistics from every input it has seen so far, just before it normalises them, so each layer
is calibrated on what the already recalibrated layers before it produce. With the
calibration images in one batch the result is exact: an eval-mode forward on them gives every
BatchNorm exactly the input mean and variance it stores (``plain``) or exactly the original's
output moments (``relative``). With several batches, earlier batches saw earlier statistics,
as in the usual cumulative re-estimation (``momentum=None``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from tinyzoo.adapt_report import Changes
from tinyzoo.errors import TinyzooError
from tinyzoo.specs import BN_RECALIBRATIONS

METHODS = BN_RECALIBRATIONS
STATS = ("running_mean", "running_var")


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`, else a one-line error."""
    if method not in METHODS:
        raise TinyzooError(f"recalibrate_bn {method!r} is not one of: {', '.join(METHODS)}")
    return method


def batchnorms(model: nn.Module) -> dict[str, _BatchNorm]:
    """The BatchNorm layers that keep running statistics, by module path, in model order."""
    return {
        name: module for name, module in model.named_modules()
        if isinstance(module, _BatchNorm) and module.track_running_stats and module.running_mean is not None
    }


class Moments:
    """Per-channel sums of everything added, accumulated in float64; ``mean_var()`` gives the mean
    and the population variance. Values are summed as differences from a per-channel shift (the
    first batch's mean), so the variance does not cancel away when the mean is large."""

    def __init__(self) -> None:
        self.shift: Tensor | None = None
        self.total: Tensor | None = None
        self.squares: Tensor | None = None
        self.count = 0

    def add(self, x: Tensor) -> None:
        values = x.detach().movedim(1, -1).reshape(-1, x.shape[1])  # a view for channels_last input
        if not values.is_floating_point() or values.dtype in (torch.float16, torch.bfloat16):
            values = values.float()
        if self.shift is None:
            self.shift = values[:4096].mean(0)
        centred = values - self.shift
        total, squares = centred.sum(0).double(), centred.square().sum(0).double()
        if self.total is None or self.squares is None:  # set together, by the first batch
            self.total, self.squares = total, squares
        else:
            self.total, self.squares = self.total + total, self.squares + squares
        self.count += values.shape[0]

    def mean_var(self) -> tuple[Tensor, Tensor]:
        if not self.count or self.shift is None or self.total is None or self.squares is None:  # all set by add()
            raise TinyzooError("no calibration images reached this BatchNorm")
        offset = self.total / self.count
        var = (self.squares / self.count - offset * offset).clamp_min(0)
        return self.shift.double() + offset, var


def _forward_all(model: nn.Module, batches: Iterable[Tensor]) -> int:
    seen = 0
    with torch.no_grad():
        for batch in batches:
            model(batch)
            seen += len(batch)
    if not seen:
        raise TinyzooError("BatchNorm recalibration needs at least one calibration image")
    return seen


def _forward_hooked(model: nn.Module, batches: Iterable[Tensor], handles: list) -> None:
    """:func:`_forward_all` in eval mode (as at inference); the hooks behind ``handles`` are removed
    and the model's mode restored afterwards, whatever happens."""
    training = model.training
    model.eval()
    try:
        _forward_all(model, batches)
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)


def input_moments(model: nn.Module, batches: Iterable[Tensor]) -> dict[str, tuple[Tensor, Tensor]]:
    """Each BatchNorm's input ``(mean, population variance)`` per channel (float64) over ``batches``,
    with the model in eval mode (as at inference); the model is not changed."""
    layers = batchnorms(model)
    moments = {name: Moments() for name in layers}
    handles = [layer.register_forward_pre_hook(_recorder(moments[name])) for name, layer in layers.items()]
    _forward_hooked(model, batches, handles)
    return {name: m.mean_var() for name, m in moments.items() if m.count}


def _recorder(moments: Moments):
    def hook(module, args):
        moments.add(args[0])
    return hook


def _target(method: str, module: _BatchNorm, mean: Tensor, var: Tensor, stored, reference) -> tuple[Tensor, Tensor]:
    """The running statistics ``method`` gives ``module`` for input moments ``(mean, var)``."""
    if method == "plain":
        return mean, var
    m0, v0 = stored
    mt, vt = reference
    ratio = torch.where(vt > 1e-12, var / vt.clamp_min(1e-12), torch.ones_like(var))
    new_var = ((v0 + module.eps) * ratio - module.eps).clamp_min(0)
    return mean - ratio.sqrt() * (mt - m0), new_var


def _calibrator(method: str, moments: Moments, stored, reference):
    def hook(module, args):
        moments.add(args[0])
        mean, var = _target(method, module, *moments.mean_var(), stored, reference)
        ref = module.running_mean
        # New tensors, never writes into the loaded ones (the adaptation report compares them).
        module.running_mean = mean.to(dtype=ref.dtype, device=ref.device)
        module.running_var = var.to(dtype=module.running_var.dtype, device=ref.device)
    return hook


def recalibrate(
    model: nn.Module,
    batches: Iterable[Tensor],
    method: str = "plain",
    reference: dict[str, tuple[Tensor, Tensor]] | None = None,
) -> list[str]:
    """Set every BatchNorm's running statistics by ``method`` (module docstring) from ``batches``
    (normalised network input at the new size); returns the recalibrated layers' paths.

    ``reference`` (for ``relative``) is :func:`input_moments` of the original network on the
    same images at its native size, keyed by the same layer paths.
    """
    check_method(method)
    layers = batchnorms(model)
    if method == "relative":
        if reference is None:
            raise TinyzooError("recalibrate_bn 'relative' needs the original network's statistics on the calibration images")
        missing = [name for name in layers if name not in reference]
        if missing:
            raise TinyzooError(f"recalibrate_bn 'relative': the original network has no statistics for BatchNorm {missing[0]!r}")
    moments = {name: Moments() for name in layers}
    handles = []
    for name, layer in layers.items():
        running_mean, running_var = layer.running_mean, layer.running_var
        assert running_mean is not None and running_var is not None  # batchnorms() keeps layers with running statistics
        stored = (running_mean.detach().double(), running_var.detach().double())
        # ``reference`` was checked above for "relative".
        ref = tuple(t.to(stored[0].device) for t in reference[name]) if method == "relative" and reference is not None else None
        handles.append(layer.register_forward_pre_hook(_calibrator(method, moments[name], stored, ref)))
    _forward_hooked(model, batches, handles)
    unused = [name for name, m in moments.items() if not m.count]
    if unused:
        raise TinyzooError(f"BatchNorm {unused[0]!r} saw no input during recalibration; it is not on the forward path")
    return list(layers)


def declare(layers: Iterable[str], detail: str) -> Changes:
    """The adaptation-report entry for recalibrated layers: their running statistics re-estimated."""
    changes = Changes()
    for name in layers:
        for stat in STATS:
            key = f"{name}.{stat}" if name else stat
            changes.resample(key, key, detail)
    return changes


# -- from calibration images (tinyzoo.data.photos.ImageViews) to recalibrated statistics ----------
BATCH_SIZE = 64


def _batches(images, mean, std):
    from tinyzoo.data.photos import normalised_batches

    return normalised_batches(images, mean, std, batch_size=BATCH_SIZE)


def reference_moments(original: nn.Module, calibration, mean, std, *, key=None) -> dict[str, tuple[Tensor, Tensor]]:
    """:func:`input_moments` of the ``original`` network on ``calibration.native`` (its native-size
    views), normalised by ``mean``/``std``; cached in ``calibration.cache`` under ``key`` when given."""
    if calibration.native is None:
        raise TinyzooError("recalibrate_bn 'relative' needs the calibration images at the network's native size as well")
    if key is not None and key in calibration.cache:
        return calibration.cache[key]
    with _channels_last(original):
        moments = input_moments(original, _batches(calibration.native, mean, std))
    if key is not None:
        calibration.cache[key] = moments
    return moments


def recalibrate_views(model: nn.Module, calibration, method: str, mean, std, reference=None) -> Changes:
    """:func:`recalibrate` ``model`` on ``calibration.small`` (normalised by ``mean``/``std``);
    returns the adaptation-report entry for the statistics it set."""
    with _channels_last(model):
        layers = recalibrate(model, _batches(calibration.small, mean, std), method, reference)
    size = calibration.small.shape[1]
    detail = f"BatchNorm statistics: {method} recalibration on {len(calibration)} images at {size} px"
    changes = declare(layers, detail)
    changes.note(f"{detail} ({len(layers)} layers; {calibration.source})")
    return changes


class _channels_last:
    """Run the model in channels_last memory layout (about 3x faster for depthwise convolutions on
    the CPU), then give every tensor its usual layout back; values never change."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.model.to(memory_format=torch.channels_last)
        return self.model

    def __exit__(self, *exc):
        self.model.to(memory_format=torch.contiguous_format)
        return False
