"""Stem surgery for ``--stem small``: shrink only the stem so the interior keeps its geometry.

A network trained at 224x224 (Inception-v3: 299) sees, after its stem, feature maps of a
known size (ResNet: 56x56, ending at 7x7). Tiny ImageNet crops are 56x56, 4x smaller per
side; taking 4x of downsampling out of the stem gives every later layer the sizes it was
trained on. One adapter per family (the table of ``docs/adapters.md``):

- ResNet, ResNeXt, WRN, DenseNet: 7x7/2 conv -> 3x3/1 conv resampled from the 7x7, max-pool removed;
- GoogLeNet: the same on ``conv1`` and ``maxpool1``: 28x28 after the stem, as at 224;
- AlexNet: 11x11/4 conv -> 3x3/1 (padding 1) resampled, max-pool kept: 56 -> 56 -> 27 -> 13 -> 6;
- VGG: the first two max-pools removed (no kernel changes): 56 ... 7;
- Inception-v3: every stride of the stem set to 1 (no kernel changes): 46/22/10 at 56 input
  against 35/17/8 at 299, the closest whole-stride geometry that still feeds the auxiliary head;
- SqueezeNet 1.1: 3x3/2 first conv -> 3x3/1 (unpadded, as it was), first max-pool removed:
  54 after the stem (native 55), then 27 and 13 as at 224.

``timm:<name>`` specs name no stem layers; for them the ResNet/DenseNet and VGG adapters apply
the generic rule of :mod:`tinyzoo.surgery.timm_geometry` (which covers ``resnetrs*`` and
``resnetblur*`` stems too), and transformers go through :mod:`tinyzoo.surgery.patch_stem`.

Every adapter here takes ``(model, spec, *, kernel_resize)`` and returns the model (changed in
place) and a :class:`~tinyzoo.adapt_report.Changes`. Layer names come from the spec.
"""

from __future__ import annotations

from torch import nn

from tinyzoo.adapt_report import Changes
from tinyzoo.errors import TinyzooError
from tinyzoo.specs import CROP_SIZE
from tinyzoo.surgery.head import get_module, set_module
from tinyzoo.surgery.kernels import plain_conv, resampled_conv

# Stem pools of timm's Inception-v3, for the timm:inception_v3 spec (the catalog names only first_conv/classifier).
TIMM_STEM_POOLS = {"inception": ("Pool1", "Pool2")}


def replace_first_conv(
    model: nn.Module, path: str, kernel: int, stride: int, padding: int, method: str, changes: Changes
) -> None:
    """Put a resampled ``kernel``/``stride``/``padding`` conv at ``path`` and declare its weight resampled."""
    old = plain_conv(get_module(model, path, "first_conv"))
    new, stats = resampled_conv(old, kernel, stride, padding, method)
    set_module(model, path, new)
    old_k = "x".join(map(str, old.kernel_size))
    if tuple(old.kernel_size) == (kernel, kernel):
        changes.note(f"first conv {path}: {old_k}/{old.stride[0]} -> {kernel}x{kernel}/{stride}, kernel kept")
        return
    detail = f"{old_k}/{old.stride[0]} -> {kernel}x{kernel}/{stride}, {method}" + (" (rescaled)" if method == "bicubic" else "")
    changes.resample(f"{path}.weight", f"{path}.weight", detail, stats)
    changes.note(f"first conv {path}: {detail}")


def stem_pools(model: nn.Module, spec, count: int | None = None) -> tuple[str, ...]:
    """The spec's stem pools, or timm's names for the family when a timm:<name> spec has none."""
    paths = tuple(spec.stem_pools) or TIMM_STEM_POOLS.get(spec.family, ())
    if count is not None:
        paths = paths[:count]
    for path in paths:
        module = get_module(model, path, "stem_pools")
        if not isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            raise TinyzooError(f"stem pool {path!r} of {spec.name!r} is a {type(module).__name__}, not a pooling layer; fix the spec's stem_pools")
    if not paths:
        raise TinyzooError(f"architecture {spec.name!r} names no stem_pools; stem small needs them in its spec")
    return paths


def remove_pools(model: nn.Module, paths, changes: Changes) -> None:
    """Replace each pooling layer at ``paths`` by ``nn.Identity`` (they hold no tensors)."""
    for path in paths:
        set_module(model, path, nn.Identity())
    changes.note(f"removed {', '.join(paths)}")


def _conv_stem(model, spec, kernel_resize, *, keep_pools: bool) -> tuple[nn.Module, Changes]:
    changes = Changes(input_size=CROP_SIZE)
    replace_first_conv(model, spec.first_conv, 3, 1, 1, kernel_resize, changes)
    if not keep_pools:
        remove_pools(model, stem_pools(model, spec, 1), changes)
    return model, changes


def small_stem_resnet(model: nn.Module, spec, *, kernel_resize: str = "bicubic") -> tuple[nn.Module, Changes]:
    """ResNet/ResNeXt/WRN/DenseNet: 3x3/1 first conv resampled from the 7x7/2, stem max-pool removed.
    A ``timm:<name>`` spec (no stem pools named) gets the generic timm rule instead."""
    if not spec.stem_pools:
        from tinyzoo.surgery.timm_stems import small_stem_timm

        return small_stem_timm(model, spec, kernel_resize=kernel_resize)
    return _conv_stem(model, spec, kernel_resize, keep_pools=False)


def small_stem_googlenet(model: nn.Module, spec, *, kernel_resize: str = "bicubic") -> tuple[nn.Module, Changes]:
    """GoogLeNet: 3x3/1 ``conv1`` resampled from the 7x7/2, ``maxpool1`` removed (28x28 after the stem)."""
    return _conv_stem(model, spec, kernel_resize, keep_pools=False)


def small_stem_alexnet(model: nn.Module, spec, *, kernel_resize: str = "bicubic") -> tuple[nn.Module, Changes]:
    """AlexNet: 3x3/1 padding-1 first conv resampled from the 11x11/4; max-pool kept (56 -> 27 -> 13 -> 6)."""
    return _conv_stem(model, spec, kernel_resize, keep_pools=True)


def small_stem_vgg(model: nn.Module, spec, *, kernel_resize: str = "bicubic") -> tuple[nn.Module, Changes]:
    """VGG: the first two max-pools removed; 56x56 input then reaches the first FC at 7x7.
    A ``timm:<name>`` spec (no stem pools named) gets the generic timm rule, which does the same."""
    if not spec.stem_pools:
        from tinyzoo.surgery.timm_stems import small_stem_timm

        return small_stem_timm(model, spec, kernel_resize=kernel_resize)
    changes = Changes(input_size=CROP_SIZE)
    remove_pools(model, stem_pools(model, spec, 2), changes)
    return model, changes


def small_stem_inception(model: nn.Module, spec, *, kernel_resize: str = "bicubic") -> tuple[nn.Module, Changes]:
    """Inception-v3: stride 1 for the first conv and both stem max-pools (3x3 windows kept).

    56x56 input then gives 46x46 at Mixed_5 (native 35), 22 at Mixed_6 (17), 10 at Mixed_7 (8).
    Weights are untouched (the first conv is already 3x3).
    """
    changes = Changes(input_size=CROP_SIZE)
    conv = get_module(model, spec.first_conv, "first_conv")
    if not isinstance(conv, nn.Conv2d):
        raise TinyzooError(f"first conv {spec.first_conv!r} of {spec.name!r} is a {type(conv).__name__}, not nn.Conv2d")
    conv.stride = (1, 1)
    for path in stem_pools(model, spec, 2):
        pool = get_module(model, path, "stem_pools")
        assert isinstance(pool, (nn.MaxPool2d, nn.AvgPool2d))  # stem_pools refused anything else
        set_module(model, path, nn.MaxPool2d(pool.kernel_size, stride=1, padding=pool.padding, ceil_mode=pool.ceil_mode))
    changes.note(f"stride 1 in {spec.first_conv} and {', '.join(stem_pools(model, spec, 2))}")
    return model, changes


def small_stem_squeezenet(model: nn.Module, spec, *, kernel_resize: str = "bicubic") -> tuple[nn.Module, Changes]:
    """SqueezeNet 1.1: the 3x3/2 first conv at stride 1 (unpadded, kernel kept) and the first max-pool
    removed: 56 px input gives 54 after the stem (native 55), then 27 and 13 as 224 px does."""
    changes = Changes(input_size=CROP_SIZE)
    replace_first_conv(model, spec.first_conv, 3, 1, 0, kernel_resize, changes)
    remove_pools(model, stem_pools(model, spec, 1), changes)
    return model, changes


def stage_sizes(model: nn.Module, stages, input_size: int) -> dict[str, tuple[int, ...]]:
    """The output shape (without batch) of each module named in ``stages`` for one
    ``input_size`` x ``input_size`` input, computed on the meta device (no arithmetic, no copy
    of the model). Used by the geometry tests and docs/make_geometry_figure.py.
    """
    from tinyzoo.surgery.meta_trace import meta_forward

    found: dict[str, tuple[int, ...]] = {}

    def hook(name):
        def record(module, args, output):
            found.setdefault(name, tuple(output.shape[1:]))
        return record

    hooks = [(get_module(model, name, "stages"), None, hook(name)) for name in stages]
    meta_forward(model, input_size, hooks)
    return {name: found[name] for name in stages if name in found}
