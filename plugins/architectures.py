"""Built-in plugin: every network of the five reports, as torch-free metadata.

Parameter counts are at the spec's own ``num_classes`` (a test builds each network on
the meta device and checks them). Results are top-1 percentages from
``shared/seeds/INDEX.md``.
"""

from __future__ import annotations

import tinyzoo
from tinyzoo.specs import ArchitectureSpec, Result

TIMM = "tinyzoo.builders:timm_model"
TORCHVISION = "tinyzoo.builders:torchvision_model"
KIM, ZHAI, YU, MILANI, FLEURET = "kim2016", "zhai2016", "yu2017", "milani2017", "fleuret-ee559"
ALL_STEMS = ("keep", "small", "resize")
SCRATCH_STEMS = ("keep",)  # built for 64x64 input already


def _timm(name, family, params, *, weights=None, report=FLEURET, results=(), **kw):
    return ArchitectureSpec(
        name=name,
        family=family,
        source="timm",
        builder=TIMM,
        builder_args={"model_name": name},
        weights=f"hf-hub:timm/{weights or name + '.tv_in1k'}",
        params=params,
        report=report,
        results=results,
        **kw,
    )


def _resnet(name, params, report=FLEURET, results=()):
    return _timm(
        name, "resnet", params, report=report, results=results, stems=ALL_STEMS,
        first_conv="conv1", stem_pools=("maxpool",), classifier="fc",
        description=f"{name} (torchvision weights through timm)",
    )


def _vgg(name, params, report=FLEURET, results=()):
    # timm's VGG keeps fc6/fc7 as convolutions (pre_logits) and its head as a Linear.
    return _timm(
        name, "vgg", params, report=report, results=results, stems=ALL_STEMS,
        first_conv="features.0", stem_pools=("features.4", "features.9"), classifier="head.fc",
        description=f"{name} (torchvision weights through timm)",
    )


def _scratch(name, family, builder, params, *, report, results=(), options=None, **kw):
    return ArchitectureSpec(
        name=name,
        family=family,
        source="tinyzoo",
        builder=builder,
        weights=None,
        input_size=64,
        num_classes=200,
        stems=SCRATCH_STEMS,
        params=params,
        report=report,
        results=results,
        options=options or {},
        **kw,
    )


ARCHITECTURES = [
    _resnet("resnet18", 11_689_512, KIM, (
        Result(KIM, "staged fine-tune, 3x3 stem, 12-crop", 75.01, 68.9, 91.86),
        Result(KIM, "staged fine-tune, 224 input, 12-crop", 73.2, 68.0),
        Result(KIM, "staged fine-tune, 224 input, center crop", 71.1, 65.8),
        Result(KIM, "head re-initialised, no staging (naive)", 51.31),
    )),
    _resnet("resnet34", 21_797_672),
    _resnet("resnet50", 25_557_032, ZHAI, (
        Result(ZHAI, "two-phase fine-tune", 59.11),
        Result(ZHAI, "from scratch", 36.56),
        Result(ZHAI, "from scratch, less filters", 32.75),
    )),
    _resnet("resnet101", 44_549_160, ZHAI, (
        Result(ZHAI, "two-phase fine-tune", 59.69, 53.2),
        Result(ZHAI, "from scratch, less filters", 31.84),
    )),
    _resnet("resnet152", 60_192_808, ZHAI, (
        Result(ZHAI, "two-phase fine-tune", 55.04),
        Result(ZHAI, "from scratch, less filters", 29.77),
    )),
    _resnet("resnext50_32x4d", 25_028_904),
    _resnet("wide_resnet50_2", 68_883_240),
    _vgg("vgg16", 138_357_544, ZHAI, (Result(ZHAI, "two-phase fine-tune", 51.8),)),
    _vgg("vgg19", 143_667_240),
    _timm(
        "densenet121", "densenet", 7_978_856, stems=ALL_STEMS,
        first_conv="features.conv0", stem_pools=("features.pool0",), classifier="classifier",
        description="DenseNet-121 (torchvision weights through timm)",
    ),
    _timm(
        "inception_v3", "inception", 23_834_568, report=MILANI,
        results=(Result(MILANI, "frozen features + linear head, augmentation, 10-crop (TL v3)", 76.7, 69.1),),
        input_size=299, stems=ALL_STEMS, interpolation="bilinear",
        first_conv="Conv2d_1a_3x3.conv", stem_pools=("Pool1", "Pool2"), classifier="fc",
        description="Inception-v3 for 299x299 input (torchvision weights through timm)",
    ),
    ArchitectureSpec(
        name="alexnet", family="alexnet", source="torchvision", builder=TORCHVISION,
        builder_args={"model_name": "alexnet"}, weights="torchvision:AlexNet_Weights.IMAGENET1K_V1",
        params=61_100_840, report=FLEURET, stems=ALL_STEMS,
        first_conv="features.0", classifier="classifier.6",
        description="AlexNet (torchvision)",
    ),
    ArchitectureSpec(
        name="googlenet", family="googlenet", source="torchvision", builder=TORCHVISION,
        builder_args={"model_name": "googlenet", "aux_logits": True, "init_weights": True},
        weights="torchvision:GoogLeNet_Weights.IMAGENET1K_V1",
        params=13_004_888, report=FLEURET, stems=ALL_STEMS,
        first_conv="conv1.conv", stem_pools=("maxpool1",), classifier="fc",
        aux_classifiers=("aux1.fc2", "aux2.fc2"),
        description="GoogLeNet / Inception-v1 with its two auxiliary classifiers (torchvision)",
    ),
    ArchitectureSpec(
        name="squeezenet1_1", family="squeezenet", source="torchvision", builder=TORCHVISION,
        builder_args={"model_name": "squeezenet1_1"}, weights="torchvision:SqueezeNet1_1_Weights.IMAGENET1K_V1",
        params=1_235_496, report=YU, stems=("keep", "resize"),
        first_conv="features.0", classifier="classifier.1",
        description="SqueezeNet 1.1; its head is a 1x1 convolution (torchvision)",
    ),
]


@tinyzoo.hookimpl
def register_architectures(register):
    for spec in ARCHITECTURES:
        register(spec)
