"""Built-in plugin: the adapters, registered exactly as a third party would register its own.

``tinyzoo.create`` runs one adapter per role (``AdapterSpec.role``, default the name), in
the order of the roles (``tinyzoo.specs.ROLE_ORDERS``: stem-small, head, convolutionize,
resize); for each role it takes the adapter naming the architecture's family over one for
``"*"``. Each ``apply`` is called as ``function(model, spec, **params)`` and returns
``(model, Changes)``; docs/adapters.md explains each one.
"""

from __future__ import annotations

import tinyzoo
from tinyzoo.specs import AdapterSpec

STEM = "tinyzoo.surgery.stem"
TIMM_STEMS = "tinyzoo.surgery.timm_stems"
PATCH_STEM = "tinyzoo.surgery.patch_stem"

ADAPTERS = [
    AdapterSpec(
        name="head", apply="tinyzoo.surgery.head:adapt_head",
        description="classes-way classifier (and auxiliary classifiers): ImageNet rows for wnids, or Kaiming normal",
    ),
    AdapterSpec(
        name="stem-small-resnet", role="stem-small", apply=f"{STEM}:small_stem_resnet", families=("resnet", "densenet"),
        description="3x3/1 first conv resampled from the 7x7/2, stem max-pool removed: 56x56 ... 7x7 at 56 input",
    ),
    AdapterSpec(
        name="stem-small-vgg", role="stem-small", apply=f"{STEM}:small_stem_vgg", families=("vgg",),
        description="first two max-pools removed: the first FC sees 7x7 at 56 input",
    ),
    AdapterSpec(
        name="stem-small-alexnet", role="stem-small", apply=f"{STEM}:small_stem_alexnet", families=("alexnet",),
        description="3x3/1 first conv resampled from the 11x11/4, max-pool kept: 27 ... 6 at 56 input",
    ),
    AdapterSpec(
        name="stem-small-googlenet", role="stem-small", apply=f"{STEM}:small_stem_googlenet", families=("googlenet",),
        description="3x3/1 conv1 resampled from the 7x7/2, first max-pool removed: 28x28 after the stem",
    ),
    AdapterSpec(
        name="stem-small-inception", role="stem-small", apply=f"{STEM}:small_stem_inception", families=("inception",),
        description="stride 1 in the stem's conv and max-pools: 46/22/10 at 56 input (native 35/17/8)",
    ),
    AdapterSpec(
        name="stem-small-squeezenet", role="stem-small", apply=f"{STEM}:small_stem_squeezenet", families=("squeezenet",),
        description="3x3/1 first conv (kernel kept), first max-pool removed: 27 ... 13 at 56 input, as at 224",
    ),
    AdapterSpec(
        name="stem-small-vit", role="stem-small", apply=f"{PATCH_STEM}:small_stem_patch", families=("vit",),
        description="ViT/DeiT/BEiT/EVA/CaiT: patch embedding resampled (16 -> 4 at 224) through timm set_input_size: the token grid kept",
    ),
    AdapterSpec(
        name="stem-small-swin", role="stem-small", apply=f"{PATCH_STEM}:small_stem_patch", families=("swin",),
        description="Swin: 4x4 patch embedding -> 1x1 (the sum over the patch) through timm set_input_size: 56x56 tokens, windows kept",
    ),
    AdapterSpec(
        name="stem-small-timm", role="stem-small", apply=f"{TIMM_STEMS}:small_stem_timm",
        description="any timm network with feature_info: 4x of strides removed before the first stride-4 stage, kernels resampled",
    ),
    AdapterSpec(
        name="stem-up2-timm", role="stem-up2", apply=f"{TIMM_STEMS}:small_up2_stem_timm",
        description="--stem small-up2: only the stem's 2x of strides removed, the input upsampled 2x; pretrained blocks untouched",
    ),
    AdapterSpec(
        name="resize", apply="tinyzoo.surgery.resize:adapt_resize",
        description="an upsampling layer in front brings 56/64 px input to the native size",
    ),
    AdapterSpec(
        name="convolutionize", apply="tinyzoo.surgery.convolutionize:adapt_convolutionize",
        description="the classifier's Linear layers become convolutions: a score map on larger input, averaged",
    ),
]


@tinyzoo.hookimpl
def register_adapters(register):
    for spec in ADAPTERS:
        register(spec)
