"""``--stem small`` for timm's patch-embedding transformers, through timm's public API.

ViT, DeiT (distilled too), BEiT, EVA, CaiT and Swin cut the image into patches with one
strided conv (``patch_embed.proj``, kernel = stride). Small input keeps the token grid by
shrinking the patch: the new patch is the one of 1, 2, 4 or 8 px whose grid at 56 px is nearest
the native grid on a log scale (16 -> 4 for a /16 ViT at 224: 14x14 tokens, exact; 4 -> 1 for
Swin at 224: 56x56 tokens, exact; a 37x37 DINOv2 grid becomes 28x28, the nearest). Those sizes
divide both 56 and 64, so the full 64 px images give whole grids too.

- The patch kernel is resampled by ``kernel_resize`` (``pi`` down to 1x1 is the sum over the
  patch); everything else goes through the model's own ``set_input_size(img_size,
  patch_size)``: position embeddings, relative-position tables and Swin's windows are
  resampled there only when the grid changes, and the report lists each such tensor.
- Models built with timm's dynamic image size (ViT, DeiT, EVA: ``dynamic_img_size=True``;
  Swin: ``strict_img_size=False``, set by the ``timm:`` catalog) then take 64 px input as a
  16x16 grid. Models without one (BEiT, CaiT, MLP-Mixer) keep a fixed 56 px input, and an input
  layer resizes anything else (64 px images) to 56 first; the report says so.
- Swin's windows must tile every stage's grid; when they do not, the adapter refuses and says
  which stage and window.
- The grid is measured, not assumed: the patch embedding's output at 56 px must be the planned
  grid. A hybrid ViT's embedding runs a convolutional backbone before its patches (timm's
  ``HybridEmbed``, which reduces the image 4x to 32x first), so its grid shrinks by that much
  more; such a model is refused in one line rather than listed with a 1x1 grid.
"""

from __future__ import annotations

import math

from torch import nn

from tinyzoo.adapt_report import Changes
from tinyzoo.errors import TinyzooError
from tinyzoo.specs import CROP_SIZE
from tinyzoo.surgery.kernels import resampled_conv
from tinyzoo.surgery.meta_trace import meta_forward
from tinyzoo.surgery.timm_geometry import fit_other_sizes, guarded_trace, output_side, refused_in_one_line

PATCHES = (1, 2, 4, 8)  # each divides 56 and 64


def nearest_patch(grid: int, kernel: int, size: int = CROP_SIZE) -> int:
    """The patch side (of ``PATCHES``, at most ``kernel``) whose grid at ``size`` px is nearest ``grid``."""
    choices = [p for p in PATCHES if p <= kernel]
    return min(choices, key=lambda p: (abs(math.log(size / p / grid)), p))


def has_patch_embed(model: nn.Module) -> bool:
    """Whether ``model``'s stem is a timm patch embedding: ``patch_embed.proj``, a conv with kernel = stride."""
    proj = getattr(getattr(model, "patch_embed", None), "proj", None)
    return isinstance(proj, nn.Conv2d) and proj.kernel_size == proj.stride and getattr(model.patch_embed, "grid_size", None) is not None


def _patch_conv(model: nn.Module, name: str) -> tuple[nn.Module, nn.Conv2d, int]:
    """The patch embedding, its conv and its (square) grid side; a one-line refusal for anything else."""
    embed = getattr(model, "patch_embed", None)
    proj, grid_size = getattr(embed, "proj", None), getattr(embed, "grid_size", None)
    if not isinstance(embed, nn.Module) or not isinstance(proj, nn.Conv2d) or grid_size is None:
        raise TinyzooError(f"{name!r} has no timm patch_embed.proj convolution with a grid; stem small for transformers needs one")
    if proj.kernel_size != proj.stride or proj.kernel_size[0] != proj.kernel_size[1] or proj.groups != 1:
        raise TinyzooError(f"{name!r}'s patch embedding is a {proj.kernel_size[0]}x{proj.kernel_size[1]}/{proj.stride[0]} conv, not square patches")
    grid = tuple(grid_size)
    if grid[0] != grid[1]:
        raise TinyzooError(f"{name!r} has a {grid[0]}x{grid[1]} token grid; stem small needs a square one")
    return embed, proj, grid[0]


def _declare_resized(changes: Changes, before: dict, after: dict, proj_key: str) -> list[str]:
    """Every tensor timm's ``set_input_size`` gave a new shape is declared resampled; returns their keys."""
    keys = []
    for key, shape in after.items():
        if key == proj_key:
            continue
        if key not in before:
            changes.init(key, "made by timm set_input_size for the new grid")
        elif before[key] != shape:
            changes.resample(key, key, f"{'x'.join(map(str, before[key]))} -> {'x'.join(map(str, shape))}, timm set_input_size", None)
            keys.append(key)
    for key in before:
        if key not in after:
            changes.remove(key, "dropped by timm set_input_size")
    return keys


def _windows(model: nn.Module) -> list[tuple[int, int]]:
    """Swin: each stage's ``(window, grid)`` sides, read from its first block (empty for other models)."""
    found = []
    for stage in getattr(model, "layers", None) or ():
        block = next(iter(getattr(stage, "blocks", ())), None)
        window, grid = getattr(block, "window_size", None), getattr(block, "input_resolution", None)
        if window is not None and grid is not None:
            found.append((_side(window), _side(grid)))
    return found


def _side(value) -> int:
    return value[0] if isinstance(value, (tuple, list)) else value


def _check_windows(name: str, before: list, after: list) -> str:
    """Each stage's window must tile its grid (refused otherwise); returns the windows as a note."""
    for index, (window, grid) in enumerate(after):
        if grid % window:
            raise TinyzooError(
                f"stem small cannot adapt {name!r}: its {window}x{window} windows do not tile stage {index}'s "
                f"{grid}x{grid} grid at {CROP_SIZE} px"
            )
    old, new = "/".join(str(w) for w, _ in before), "/".join(str(w) for w, _ in after)
    return "" if not after else f", windows {new}" if old == new else f", windows {old} -> {new}"


def _set_input_size(model: nn.Module, embed: nn.Module, spec, grid: int, patch: int) -> None:
    """The model's own ``set_input_size`` (or, when nothing else depends on the grid, the patch
    embedding's); a one-line refusal when timm offers neither for this change."""
    new_grid = CROP_SIZE // patch
    size, patch_size = (CROP_SIZE, CROP_SIZE), (patch, patch)
    model_set, embed_set = getattr(model, "set_input_size", None), getattr(embed, "set_input_size", None)
    try:
        if model_set is not None:
            model_set(img_size=size, patch_size=patch_size)
            return
    except TypeError as exc:
        raise TinyzooError(f"stem small cannot adapt {spec.name!r}: timm's set_input_size cannot change its patch size ({exc})") from None
    if new_grid != grid or embed_set is None:
        raise TinyzooError(
            f"stem small cannot adapt {spec.name!r}: its {grid}x{grid} grid becomes {new_grid}x{new_grid} at {CROP_SIZE} px "
            "and timm offers no set_input_size to resample its position embeddings"
        )
    embed_set(img_size=size, patch_size=patch_size)  # only the patch embedding knows its size


def check_grid(model: nn.Module, embed: nn.Module, name: str, grid: int, planned: int, channels: int) -> None:
    """The patch embedding's token grid at 56 px, measured on the meta device, must be ``planned``
    (a ``(tokens, channels)`` list or an NHWC map); a one-line refusal otherwise."""
    found: list[int | None] = []
    meta_forward(model, CROP_SIZE, [(embed, None, lambda m, a, out: found.append(output_side(out, channels)))])
    if found[:1] != [planned]:
        side = "?" if not found or found[0] is None else found[0]
        raise TinyzooError(
            f"stem small cannot adapt {name!r}: its {type(embed).__name__} gives {side}x{side} tokens at {CROP_SIZE} px, "
            f"not the {planned}x{planned} its patches would (layers before the patch conv reduce the image too; "
            f"the native grid is {grid}x{grid}); use --stem keep or resize"
        )


@refused_in_one_line("stem small")
def small_stem_patch(model: nn.Module, spec, *, kernel_resize: str = "bicubic") -> tuple[nn.Module, Changes]:
    """Patches shrunk so 56 px input gives the native token grid (or the nearest); the module
    docstring has the rule. Position embeddings are kept when the grid is kept."""
    embed, proj, grid = _patch_conv(model, spec.name)
    kernel = proj.kernel_size[0]
    patch = nearest_patch(grid, kernel)
    new_grid = CROP_SIZE // patch
    conv, stats = resampled_conv(proj, patch, patch, 0, kernel_resize)
    before, old_windows = {k: tuple(v.shape) for k, v in model.state_dict().items()}, _windows(model)
    _set_input_size(model, embed, spec, grid, patch)
    key = "patch_embed.proj"
    embed.get_submodule("proj").weight = conv.weight  # set_input_size may have made a new proj; timm resampled it its own way; the report's method decides
    changes = Changes(input_size=CROP_SIZE)
    detail = f"{kernel}x{kernel}/{kernel} -> {patch}x{patch}/{patch}, {kernel_resize}" + (" (rescaled)" if kernel_resize == "bicubic" else "")
    changes.resample(f"{key}.weight", f"{key}.weight", detail, stats)
    resized = _declare_resized(changes, before, {k: tuple(v.shape) for k, v in model.state_dict().items()}, f"{key}.weight")
    windows = _check_windows(spec.name, old_windows, _windows(model))
    guarded_trace(model, CROP_SIZE, spec.name, "stem small")
    check_grid(model, embed, spec.name, grid, new_grid, proj.out_channels)
    fit_other_sizes(model, spec, None, CROP_SIZE, "stem small", changes)
    kept = "kept" if new_grid == grid else f"nearest to the native {grid}x{grid}"
    changes.note(
        f"patches {patch}x{patch}: {new_grid}x{new_grid} tokens at {CROP_SIZE} px ({kept}){windows}; "
        + (f"resampled by timm set_input_size: {', '.join(resized)}" if resized else "position embeddings unchanged")
    )
    return model, changes
