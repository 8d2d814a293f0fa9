"""The stem adapters for timm's networks (``stem-small-timm``, ``stem-up2-timm``).

Each picks the surgery a network needs: a patch embedding goes through
:mod:`tinyzoo.surgery.patch_stem`, anything else through the ``feature_info`` rule of
:mod:`tinyzoo.surgery.timm_geometry`.
"""

from __future__ import annotations

from torch import nn

from tinyzoo.adapt_report import Changes
from tinyzoo.specs import CROP_SIZE
from tinyzoo.surgery.patch_stem import has_patch_embed, small_stem_patch
from tinyzoo.surgery.resize import InputUpsample
from tinyzoo.surgery.timm_geometry import apply_geometry, describe_sizes, fit_other_sizes, refused_in_one_line


@refused_in_one_line("stem small")
def small_stem_timm(model: nn.Module, spec, *, kernel_resize: str = "bicubic") -> tuple[nn.Module, Changes]:
    """``--stem small`` for any timm network with ``feature_info``: 4x of strides taken out before the
    first stride-4 stage, kernels resampled to their footprint (the rule of
    :mod:`tinyzoo.surgery.timm_geometry`). A network whose stem is a timm patch embedding goes
    through :mod:`tinyzoo.surgery.patch_stem`."""
    if has_patch_embed(model):
        return small_stem_patch(model, spec, kernel_resize=kernel_resize)
    plan, changes, native, small, phrases = apply_geometry(model, spec, kernel_resize, stem_only=False, what="stem small")
    fit_other_sizes(model, spec, None, CROP_SIZE, "stem small", changes)
    changes.note(f"stem small (timm feature_info rule, up to {plan.target}): {'; '.join(phrases)}")
    changes.note(describe_sizes(native, small, spec.input_size, CROP_SIZE))
    return model, changes


@refused_in_one_line("stem small-up2")
def small_up2_stem_timm(
    model: nn.Module, spec, *, kernel_resize: str = "bicubic", mode: str = "bicubic"
) -> tuple[nn.Module, Changes]:
    """``--stem small-up2``: only the stem's strides (2x) taken out, the input upsampled 2x in front;
    the pretrained blocks keep every stride."""
    _plan, changes, native, small, phrases = apply_geometry(model, spec, kernel_resize, stem_only=True, what="stem small-up2")
    fit_other_sizes(model, spec, InputUpsample(2, mode), 2 * CROP_SIZE, "stem small-up2", changes)
    changes.note(f"stem small-up2 (timm feature_info rule): input upsampled 2x ({mode}); {'; '.join(phrases)}")
    changes.note(describe_sizes(native, small, spec.input_size, CROP_SIZE))
    return model, changes
