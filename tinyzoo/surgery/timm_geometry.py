"""One geometry rule for timm's convolutional and hierarchical networks (``--stem small``).

timm describes every model's stages in ``model.feature_info``: each stage's module and its
reduction (the input side divided by the stage's map side). The rule reads that, never a
per-family table:

1. The **target** is the first stage whose reduction is 4 or more (at 224 px: the 56x56 stage).
2. One forward pass at the native size, on the meta device, finds every layer with a stride
   that runs before the target's output, and the map size it reads. Layers reading the same
   size are parallel branches of one downsampling step (a block's strided conv and its
   shortcut): they change together.
3. Steps are taken out in forward order until 4x of reduction is gone: their layers get
   stride 1, max/average/blur pools are dropped (a "valid" max filter, odd window and no
   padding, keeps its window at stride 1, as Inception's stem does), and a patchify conv
   (kernel = stride, ConvNeXt's and Swin's 4x4/4) becomes 1x1/1 with its weight resampled.
4. A second pass at 56 px gives each conv the map size it now reads; a conv whose map shrank
   (ratio ``r`` < 1) and whose kernel is larger than 3 gets the kernel nearest ``k * r``
   (odd, at least 3), resampled by ``kernel_resize``: a 7x7 reading 56 instead of 224 becomes
   3x3, as Kim's ResNet stem.
5. The result is checked at 56 and 64 px and each stage's size reported against the native
   one; where whole strides cannot give the native sizes (a 160 or 299 px network) the sizes
   are the nearest and the note says so. A network with layers fixed to one input size
   (attention-bias or position tables) that runs at 56 but not at 64 px gets an input layer
   resizing other sizes to 56. A network the rule cannot change (a downsampling that is not a
   layer, branches that no longer fit) is refused in one line, never with a torch error.

A patchify conv that is the ``proj`` of a timm ``PatchEmbed`` is told its new patch and input
size through the embedding's own ``set_input_size``; a network whose stem is ``patch_embed``
(ViT, Swin, ...) goes to :mod:`tinyzoo.surgery.patch_stem` instead.

The **up-sampling variant** (``--stem small-up2``) removes only the stem's strides (those
before the target stage starts) when they make 2x, and puts a 2x input upsampling in front:
every pretrained block keeps its strides, and the stages still get their native sizes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from tinyzoo.adapt_report import Changes
from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.specs import CROP_SIZE, IMAGE_SIZE
from tinyzoo.surgery.head import get_module, set_module
from tinyzoo.surgery.meta_trace import meta_forward

if TYPE_CHECKING:
    from tinyzoo.surgery.resize import InputLayer

REMOVED_REDUCTION = 4
POOLS = (nn.MaxPool2d, nn.AvgPool2d)


@dataclass
class Strided:
    """A layer with a stride that runs before the target stage's output, at the native size."""

    name: str
    kind: str  # conv, pool or blur
    stride: int
    in_size: tuple[int, int]
    in_stem: bool


@dataclass
class GeometryPlan:
    """Which downsampling steps the rule takes out, and what it found on the way."""

    target: str
    native: int
    strided: list[Strided]
    native_trace: Trace
    removed: dict[str, int] = field(default_factory=dict)  # layer name -> its new stride
    inner: int = CROP_SIZE  # the size the network itself sees: 56, or 112 behind a 2x upsampling
    stem_reduction: int = 1


def _leaves(model: nn.Module):
    return [(name, m) for name, m in model.named_modules() if name and not next(m.children(), None)]


def _stride(module: nn.Module) -> int:
    stride = getattr(module, "stride", 1)
    stride = stride[0] if isinstance(stride, (tuple, list)) else stride
    return stride if isinstance(stride, int) else 1


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, POOLS):
        return "pool"
    if type(module).__name__ == "BlurPool2d":
        return "blur"
    return None


@dataclass
class Trace:
    """One forward pass: the map size each conv/pool leaf reads (first call, up to the target stage's
    output) and whether it ran inside the target stage; each stage's output size."""

    inputs: dict[str, tuple[tuple[int, int], bool]] = field(default_factory=dict)
    sizes: dict[str, int | None] = field(default_factory=dict)


def trace(model: nn.Module, size: int, target: str | None = None, stages=()) -> Trace:
    """The :class:`Trace` of ``model`` on one ``size`` px input (meta device)."""
    found = Trace()
    state = {"inside": False, "done": False}

    def leaf_hook(name):
        def hook(module, args):
            x = args[0] if args else None
            if not state["done"] and name not in found.inputs and isinstance(x, torch.Tensor) and x.dim() == 4:
                found.inputs[name] = (tuple(x.shape[-2:]), state["inside"])
        return hook

    def stage_hook(stage):
        def hook(module, args, output):
            found.sizes.setdefault(stage["module"], output_side(output, stage.get("num_chs"), prefix))
            if stage["module"] == target:
                state["done"] = True
        return hook

    prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
    hooks = [(m, leaf_hook(n), None) for n, m in _leaves(model) if _kind(m) is not None]
    if target is not None:
        hooks.append((model.get_submodule(target), lambda m, a: state.update(inside=True), None))
    hooks += [(model.get_submodule(s["module"]), None, stage_hook(s)) for s in stages]
    meta_forward(model, size, hooks)
    found.sizes = {s["module"]: found.sizes.get(s["module"]) for s in stages}
    return found


# -- planning ---------------------------------------------------------------------------------------
def feature_stages(model: nn.Module, name: str) -> list[dict]:
    """timm's ``feature_info`` as a list of dicts (``module``, ``reduction``, ``num_chs``), each
    module checked to exist (some networks name the modules of their features-only wrapper)."""
    info = getattr(model, "feature_info", None)
    stages = [dict(s) for s in info] if isinstance(info, (list, tuple)) else []
    if not stages or any("module" not in s or "reduction" not in s for s in stages):
        raise TinyzooError(f"stem small cannot adapt {name!r}: it has no timm feature_info (stage modules and reductions)")
    for stage in stages:
        try:
            model.get_submodule(stage["module"])
        except AttributeError:
            raise TinyzooError(
                f"stem small cannot adapt {name!r}: its timm feature_info names {stage['module']!r}, which is not a module "
                "of the network, so its stages cannot be found"
            ) from None
    return stages


def target_stage(stages: list[dict], name: str) -> str:
    """The first stage whose reduction is at least 4."""
    for stage in stages:
        if stage["reduction"] >= REMOVED_REDUCTION:
            return stage["module"]
    raise TinyzooError(f"{name!r} reduces its input at most {stages[-1]['reduction']}x; stem small has no 4x to remove")


def strided_layers(model: nn.Module, native: Trace) -> list[Strided]:
    """The layers with a stride above 1 that ran before the target's output in the ``native`` trace."""
    modules = dict(model.named_modules())
    found = []
    for name, (size, inside) in native.inputs.items():
        kind = _kind(modules[name])  # never None: the trace records conv, pool and blur leaves only
        if kind is not None and _stride(modules[name]) > 1:
            found.append(Strided(name, kind, _stride(modules[name]), size, not inside))
    return found


def _steps(strided: list[Strided]) -> list[tuple[tuple[int, int], list[Strided]]]:
    """The layers grouped by the map size they read, in forward order: one downsampling step each."""
    steps: dict[tuple[int, int], list[Strided]] = {}
    for layer in strided:
        steps.setdefault(layer.in_size, []).append(layer)
    return list(steps.items())


def plan_geometry(model: nn.Module, spec, stages: list[dict], *, stem_only: bool = False) -> GeometryPlan:
    """The steps to take out: 4x of reduction before the target stage (only the stem's with ``stem_only``)."""
    target = target_stage(stages, spec.name)
    native = trace(model, spec.input_size, target, stages)
    plan = GeometryPlan(target=target, native=spec.input_size, strided=strided_layers(model, native), native_trace=native)
    steps = _steps(plan.strided)
    plan.stem_reduction = math.prod(members[0].stride for _, members in steps if all(m.in_stem for m in members))
    need = plan.stem_reduction if stem_only else REMOVED_REDUCTION
    for size, members in steps:
        if need == 1 or (stem_only and not all(m.in_stem for m in members)):
            break
        strides = {m.stride for m in members}
        if len(strides) != 1:
            listed = ", ".join(f"{m.name} (/{m.stride})" for m in members)
            raise TinyzooError(f"stem small cannot adapt {spec.name!r}: parallel layers reading {size[0]}x{size[1]} have different strides: {listed}")
        take = math.gcd(strides.pop(), need)
        if take == 1:
            continue  # a /7 patchify stem cannot lose 2x or 4x
        for member in members:
            plan.removed[member.name] = member.stride // take
        need //= take
    if need > 1:
        found = ", ".join(f"{m.name} (/{m.stride})" for m in plan.strided) or "none"
        raise TinyzooError(
            f"stem small cannot adapt {spec.name!r}: the layers with a stride before {target!r} make less than "
            f"{REMOVED_REDUCTION}x ({found}); the rest of its downsampling is not a layer tinyzoo can change"
        )
    return plan


# -- applying -----------------------------------------------------------------------------------------
def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _same_padding(kernel: int, stride: int) -> int:
    # timm's static "same" padding for odd kernels: ((stride - 1) + (kernel - 1)) // 2.
    return ((stride - 1) + (kernel - 1)) // 2


def set_conv(conv: nn.Conv2d, kernel: int, stride: int, method: str) -> dict | None:
    """``conv`` changed in place to ``kernel`` x ``kernel`` / ``stride``; a new kernel is resampled
    from the old one by ``method`` (a new tensor, the loaded one untouched). Padding follows:
    "same" padding stays same, none stays none. Returns the kernel stats when resampled."""
    from tinyzoo.surgery.kernels import resample_kernel

    old_kernel, old_stride = _pair(conv.kernel_size)[0], _pair(conv.stride)[0]
    padding = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)[0]
    if not isinstance(padding, str):
        if padding == _same_padding(old_kernel, old_stride):
            padding = _same_padding(kernel, stride)
        elif padding:
            padding = min(padding, (kernel - 1) // 2)
        conv.padding = (padding, padding)
        if conv.padding_mode != "zeros":  # torch pads these itself, from this list
            conv._reversed_padding_repeated_twice = [padding] * 4
    conv.stride = (stride, stride)
    stats = None
    if kernel != old_kernel:
        values, kernel_stats = resample_kernel(conv.weight.detach(), kernel, method, rescale=True)
        conv.weight = nn.Parameter(values.contiguous(), requires_grad=conv.weight.requires_grad)
        conv.kernel_size = (kernel, kernel)
        stats = kernel_stats.to_dict() if not values.is_meta else None
        scale = getattr(conv, "scale", None)
        if isinstance(scale, float):  # timm's ScaledStdConv2d: gain * fan_in ** -0.5, fan-in changed
            conv.scale = scale * math.sqrt((old_kernel * old_kernel) / (kernel * kernel))  # type: ignore[assignment]  # torch's stub wrongly limits Module attributes to Tensor | Module
    return stats


def _declare_conv(changes: Changes, name: str, conv, old: str, stats, method: str) -> None:
    new = f"{conv.kernel_size[0]}x{conv.kernel_size[1]}/{conv.stride[0]}"
    if stats is None and old.split("/")[0] == new.split("/")[0]:
        return
    detail = f"{old} -> {new}, {method}" + (" (rescaled)" if method == "bicubic" else "")
    changes.resample(f"{name}.weight", f"{name}.weight", detail, stats)


def _describe(module: nn.Module) -> str:
    kind = _kind(module)
    if kind is None:
        return "dropped"
    if isinstance(module, nn.Conv2d):  # kind "conv"
        return f"{module.kernel_size[0]}x{module.kernel_size[1]}/{_stride(module)}"
    return f"{type(module).__name__} /{_stride(module)}"


def layer_states(model: nn.Module, names) -> dict[str, str]:
    """``name -> "7x7/2"``, ``"MaxPool2d /2"`` or ``"dropped"``, for the report's notes."""
    modules = dict(model.named_modules())
    return {name: _describe(modules[name]) for name in names}


def remove_strides(model: nn.Module, plan: GeometryPlan, method: str, changes: Changes) -> None:
    """Apply ``plan.removed``: strides lowered, pools dropped (or kept as stride-1 "valid" max
    filters), patchify convs (kernel = stride, no padding) shrunk with their stride."""
    for name, stride in plan.removed.items():
        module = get_module(model, name, "strided layer")
        old_stride = _stride(module)
        if isinstance(module, nn.Conv2d):  # kind "conv"
            kernel, old = _pair(module.kernel_size)[0], _describe(module)
            patchify = kernel == old_stride and _pair(module.padding)[0] == 0 and kernel > 1
            new_kernel = kernel * stride // old_stride if patchify else kernel
            module = _resize_patch_embed(model, name, module, plan, new_kernel) if patchify else module
            _declare_conv(changes, name, module, old, set_conv(module, new_kernel, stride, method), method)
        elif stride == 1 and not _valid_max_filter(module):
            for key in module.state_dict():
                changes.remove(f"{name}.{key}", "pool dropped by stem small")
            set_module(model, name, nn.Identity())
        else:
            module.stride = stride  # type: ignore[assignment]  # torch's stub wrongly limits Module attributes to Tensor | Module


def _resize_patch_embed(model: nn.Module, name: str, conv: nn.Conv2d, plan: GeometryPlan, patch: int) -> nn.Conv2d:
    """When ``conv`` is the ``proj`` of a timm ``PatchEmbed``, tell the embedding its new patch and
    input size through its own ``set_input_size`` (it checks the input against them). Returns the
    conv to change: the embedding's new one, still holding the old kernel for :func:`set_conv`."""
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    set_input_size = getattr(parent, "set_input_size", None)
    if leaf != "proj" or type(parent).__name__ != "PatchEmbed" or not callable(set_input_size):
        return conv
    native_side = plan.native_trace.inputs[name][0][0]
    # Its input side at 56 px: shrunk 4x with the image, grown back by every step taken out before it.
    earlier = math.prod(s.stride // plan.removed[s.name] for s in plan.strided if s.name in plan.removed and s.in_size[0] > native_side)
    side = native_side * plan.inner * earlier // plan.native
    set_input_size(img_size=(side, side), patch_size=(patch, patch))
    parent.proj = conv  # timm resampled a copy its own way; the kernel_resize method decides, in set_conv
    return conv


def _valid_max_filter(module: nn.Module) -> bool:
    kernel, padding = _pair(getattr(module, "kernel_size", 1))[0], _pair(getattr(module, "padding", 0))[0]
    return isinstance(module, nn.MaxPool2d) and kernel % 2 == 1 and kernel > 1 and 2 * padding < kernel - 1


def footprint_kernel(kernel: int, ratio: float) -> int:
    """The kernel for a conv that reads a map ``ratio`` times its native side: the odd size nearest
    ``kernel * ratio``, at least 3, never more than ``kernel`` (kernels of 3 or less are kept)."""
    if kernel <= 3 or ratio >= 1:
        return kernel
    nearest = 2 * round((kernel * ratio - 1) / 2) + 1
    return min(kernel, max(3, nearest))


def shrink_kernels(model: nn.Module, plan: GeometryPlan, now: Trace, method: str, changes: Changes) -> bool:
    """Kernels larger than 3 that read a smaller map in ``now`` than in the native trace get the
    kernel nearest their old footprint, resampled. Returns whether a map size may have changed
    (a shrunk kernel whose padding was not "same")."""
    modules = dict(model.named_modules())
    sizes_changed = False
    for name, (size, _) in now.inputs.items():
        conv, native = modules[name], plan.native_trace.inputs.get(name)
        if native is None or _kind(conv) != "conv" or _pair(conv.dilation) != (1, 1):
            continue
        kernel, stride = _pair(conv.kernel_size)[0], _stride(conv)
        new = footprint_kernel(kernel, size[0] / native[0][0])
        if new != kernel:
            sizes_changed |= _pair(conv.padding)[0] != _same_padding(kernel, stride)
            old = _describe(conv)
            _declare_conv(changes, name, conv, old, set_conv(conv, new, stride, method), method)
    return sizes_changed


# -- checking -------------------------------------------------------------------------------------------
def output_side(output, channels: int | None, prefix: int = 0) -> int | None:
    """A stage output's spatial side: an NCHW or NHWC map (told apart by ``channels``), or a
    transformer's ``(tokens, C)`` grid less its ``prefix`` (class, register) tokens."""
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        return None
    shape = tuple(output.shape[1:])
    if len(shape) == 3:
        nhwc = channels is not None and shape[0] != channels and shape[-1] == channels
        return shape[0] if nhwc else shape[1]
    if len(shape) == 2:
        for extra in (prefix, 0):
            side = math.isqrt(max(shape[0] - extra, 0))
            if side and side * side == shape[0] - extra:
                return side
    return None


def sizes_text(sizes) -> str:
    """``56/28/14/7``; a run of one size written once (a ViT's 12 blocks of 14x14 tokens: ``14 (x12)``)."""
    runs: list[list] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    return "/".join(("?" if v is None else str(v)) + (f" (x{n})" if n > 1 else "") for v, n in runs) or "-"


def guarded_trace(model: nn.Module, size: int, name: str, what: str, target: str | None = None, stages=()) -> Trace:
    """:func:`trace`, with a torch error turned into a one-line refusal: the rule broke this network."""
    try:
        return trace(model, size, target, stages)
    except TinyzooError:
        raise
    except Exception as exc:
        raise TinyzooError(f"{what} cannot adapt {name!r}: after the change it fails at {size} px ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return one_line(exc, 160, typed=True) if str(exc).strip() else f"{type(exc).__name__}: a layer that expects a fixed input size"


def refused_in_one_line(what: str):
    """Decorate an adapter so that any error but a :class:`TinyzooError` becomes a one-line refusal."""
    def decorate(function):
        @functools.wraps(function)
        def adapter(model, spec, **params):
            try:
                return function(model, spec, **params)
            except TinyzooError:
                raise
            except Exception as exc:  # never a traceback for a network the rule cannot change
                raise TinyzooError(f"{what} cannot adapt {spec.name!r}: {_first_line(exc)}") from None
        return adapter
    return decorate


def fit_other_sizes(model: nn.Module, spec, layer: InputLayer | None, inner: int, what: str, changes: Changes) -> None:
    """Put ``layer`` (an input upsampling, or nothing) in front and check 64 px input. A network with
    layers fixed to one size (attention biases, position tables) fails there: it gets an input
    layer that resizes any input to ``inner`` px instead, and the report says so."""
    from tinyzoo.surgery.resize import InputResize, attach_input_resize, detach_input_resize

    if layer is not None:
        attach_input_resize(model, layer)
    try:
        trace(model, IMAGE_SIZE)
        return
    except Exception:
        detach_input_resize(model)
    attach_input_resize(model, InputResize(inner, "bicubic"))
    guarded_trace(model, IMAGE_SIZE, spec.name, what)
    changes.note(f"{spec.name} has layers fixed to one input size: other input sizes ({IMAGE_SIZE} px) are resized to {inner} px first")


def describe_sizes(native: dict, small: dict, native_size: int, size: int) -> str:
    """``"stage sizes 56/28/14/7 at 56 px, as at 224 px"``, or the nearest sizes and the native ones."""
    if list(native.values()) == list(small.values()):
        return f"stage sizes {sizes_text(small.values())} at {size} px, as at {native_size} px"
    return (
        f"stage sizes {sizes_text(small.values())} at {size} px, the nearest whole strides give "
        f"(native {sizes_text(native.values())} at {native_size} px)"
    )


def from_target(sizes: dict, target: str) -> dict:
    """The stages from ``target`` on: the ones whose sizes the rule keeps."""
    names = list(sizes)
    return {k: sizes[k] for k in names[names.index(target):]}


# -- the adapters -----------------------------------------------------------------------------------------
def apply_geometry(model: nn.Module, spec, method: str, *, stem_only: bool, what: str):
    """Plan and apply the rule; returns ``(plan, changes, native sizes, sizes at the inner size,
    phrases)``, the sizes from the target stage on. The inner size is 56 px, or 112 behind a 2x
    upsampling (``stem_only``)."""
    stages = feature_stages(model, spec.name)
    plan = plan_geometry(model, spec, stages, stem_only=stem_only)
    if stem_only and plan.stem_reduction != 2:
        raise TinyzooError(
            f"stem small-up2 is for networks whose stem reduces 2x before the first stride-4 stage; "
            f"{spec.name} reduces {plan.stem_reduction}x before {plan.target!r}: use stem small"
        )
    inner = plan.inner = CROP_SIZE * (REMOVED_REDUCTION // plan.stem_reduction if stem_only else 1)
    before = layer_states(model, plan.native_trace.inputs)
    changes = Changes(input_size=CROP_SIZE)
    remove_strides(model, plan, method, changes)
    now = guarded_trace(model, inner, spec.name, what, plan.target, stages)
    if shrink_kernels(model, plan, now, method, changes):
        now = guarded_trace(model, inner, spec.name, what, None, stages)
    after = layer_states(model, before)
    phrases = [f"{n} {before[n]} -> {after[n]}" for n in before if before[n] != after[n]]
    native = from_target(plan.native_trace.sizes, plan.target)
    return plan, changes, native, from_target(now.sizes, plan.target), phrases
