"""Built-in plugin: every network of the five reports, and a curated set of modern timm
networks, as torch-free metadata.

Parameter counts are at the spec's own ``num_classes`` (a test builds each network on
the meta device and checks them). Results are top-1 percentages from
``shared/seeds/INDEX.md``; the modern networks' come from its figures from outside the reports.
"""

from __future__ import annotations

import tinyzoo
from tinyzoo.specs import ArchitectureSpec, Result
from tinyzoo.timm_catalog import DYNAMIC_ARGS

TIMM = "tinyzoo.builders:timm_model"
TORCHVISION = "tinyzoo.builders:torchvision_model"
KIM, ZHAI, YU, MILANI, FLEURET = "kim2016", "zhai2016", "yu2017", "milani2017", "fleuret-ee559"
LITERATURE = "literature"  # shared/seeds/INDEX.md: figures from outside the reports
ALL_STEMS = ("keep", "small", "resize")
UP2_STEMS = ("keep", "small", "small-up2", "resize")
SCRATCH_STEMS = ("keep",)  # built for 64x64 input already


def _timm(name, family, params, *, weights=None, report=FLEURET, results=(), builder_args=None, **kw):
    return ArchitectureSpec(
        name=name,
        family=family,
        source="timm",
        builder=TIMM,
        builder_args={"model_name": name, **(builder_args or {})},
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
        stages=("maxpool", "layer1", "layer2", "layer3", "layer4"),
        description=f"{name} (torchvision weights through timm)",
    )


def _vgg(name, params, block_ends, report=FLEURET, results=()):
    # timm's VGG keeps fc6/fc7 as convolutions (pre_logits) and its head as a Linear.
    # block_ends: the features index of each block's max-pool; the first two are the stem's.
    return _timm(
        name, "vgg", params, report=report, results=results, stems=ALL_STEMS,
        first_conv="features.0", stem_pools=tuple(f"features.{i}" for i in block_ends[:2]),
        classifier="head.fc", stages=tuple(f"features.{i}" for i in block_ends[1:]),
        description=f"{name} (torchvision weights through timm)",
    )


def _scratch(name, family, builder, params, *, report, results=(), options=None, input_size=64, **kw):
    return ArchitectureSpec(
        name=name,
        family=family,
        source="tinyzoo",
        builder=builder,
        weights=None,
        input_size=input_size,
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
    _vgg("vgg16", 138_357_544, (4, 9, 16, 23, 30), ZHAI, (Result(ZHAI, "two-phase fine-tune", 51.8),)),
    _vgg("vgg19", 143_667_240, (4, 9, 18, 27, 36)),
    _timm(
        "densenet121", "densenet", 7_978_856, stems=ALL_STEMS,
        first_conv="features.conv0", stem_pools=("features.pool0",), classifier="classifier",
        stages=("features.pool0", "features.denseblock1", "features.denseblock2", "features.denseblock3",
                "features.denseblock4"),
        description="DenseNet-121 (torchvision weights through timm)",
    ),
    # Built with its auxiliary head: the tv_in1k checkpoint carries AuxLogits.*, and timm expects
    # that checkpoint's input normalised to [-1, 1] (mean/std 0.5), bicubic.
    _timm(
        "inception_v3", "inception", 27_161_264, report=MILANI,
        results=(Result(MILANI, "frozen features + linear head, augmentation, 10-crop (TL v3)", 76.7, 69.1),),
        input_size=299, stems=ALL_STEMS, interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        builder_args={"aux_logits": True},
        first_conv="Conv2d_1a_3x3.conv", stem_pools=("Pool1", "Pool2"), classifier="fc",
        aux_classifiers=("AuxLogits.fc",), stages=("Pool2", "Mixed_5d", "Mixed_6e", "Mixed_7c"),
        description="Inception-v3 for 299x299 input (torchvision weights through timm)",
    ),
    ArchitectureSpec(
        name="alexnet", family="alexnet", source="torchvision", builder=TORCHVISION,
        builder_args={"model_name": "alexnet"}, weights="torchvision:AlexNet_Weights.IMAGENET1K_V1",
        params=61_100_840, report=FLEURET, stems=ALL_STEMS,
        first_conv="features.0", stem_pools=("features.2",), classifier="classifier.6",
        stages=("features.2", "features.5", "features.12"),
        description="AlexNet (torchvision)",
    ),
    ArchitectureSpec(
        name="googlenet", family="googlenet", source="torchvision", builder=TORCHVISION,
        # transform_input: the IMAGENET1K_V1 weights expect it (torchvision sets it when it loads them).
        builder_args={"model_name": "googlenet", "aux_logits": True, "init_weights": True, "transform_input": True},
        weights="torchvision:GoogLeNet_Weights.IMAGENET1K_V1",
        params=13_004_888, report=FLEURET, stems=ALL_STEMS,
        first_conv="conv1.conv", stem_pools=("maxpool1",), classifier="fc",
        aux_classifiers=("aux1.fc2", "aux2.fc2"), stages=("maxpool2", "inception3b", "inception4e", "inception5b"),
        description="GoogLeNet / Inception-v1 with its two auxiliary classifiers (torchvision)",
    ),
    ArchitectureSpec(
        name="squeezenet1_1", family="squeezenet", source="torchvision", builder=TORCHVISION,
        builder_args={"model_name": "squeezenet1_1"}, weights="torchvision:SqueezeNet1_1_Weights.IMAGENET1K_V1",
        params=1_235_496, report=YU, stems=ALL_STEMS,
        first_conv="features.0", stem_pools=("features.2",), classifier="classifier.1",
        stages=("features.2", "features.5", "features.8", "features.12"),
        description="SqueezeNet 1.1; its head is a 1x1 convolution (torchvision)",
    ),
]


WIDTH = {"width": "channel multiplier; 0.25 gives the report's 'less filters' variant"}

ARCHITECTURES += [
    _scratch(
        "resnet20_zhai", "resnet_zhai", "tinyzoo_plugins.models.zhai:resnet20_zhai", 3_649_032,
        report=ZHAI, options=WIDTH,
        results=(
            Result(ZHAI, "from scratch", 45.59),
            Result(ZHAI, "from scratch, less filters (width 0.25)", 40.13),
            Result(YU, "from scratch, 10 epochs (Yu's ResNet-20)", 55.4, 45.0),
        ),
        first_conv="stem.conv", stem_pools=("stem.pool",), classifier="fc",
        description="Zhai's ResNet-20: bottleneck blocks in three stages (64/128/256), 2-2-2 replicas",
    ),
    _scratch(
        "resnet38_zhai", "resnet_zhai", "tinyzoo_plugins.models.zhai:resnet38_zhai", 6_793_992,
        report=ZHAI, options=WIDTH,
        results=(
            Result(ZHAI, "from scratch", 44.03),
            Result(ZHAI, "from scratch, less filters (width 0.25)", 38.28),
        ),
        first_conv="stem.conv", stem_pools=("stem.pool",), classifier="fc",
        description="Zhai's ResNet-38: bottleneck blocks in three stages (64/128/256), 3-5-4 replicas",
    ),
    _scratch(
        "yu_baseline", "plain", "tinyzoo_plugins.models.yu:yu_baseline", 13_054_984,
        report=YU, results=(Result(YU, "from scratch, 10 epochs", 33.04),),
        first_conv="features.conv", stem_pools=("features.pool",), classifier="classifier.out",
        description="Yu's one-layer baseline: conv-ReLU-pool-FC-ReLU-FC",
    ),
    _scratch(
        "alexnet_yu", "alexnet_yu", "tinyzoo_plugins.models.yu:alexnet_yu", 15_303_176,
        report=YU, results=(Result(YU, "from scratch, 10 epochs", 43.65),), input_size=56,
        first_conv="features.conv1a", stem_pools=("features.pool1",), classifier="classifier.out",
        description="Yu's reduced AlexNet for 56x56 crops (Table 2)",
    ),
    _scratch(
        "googlenet_yu", "googlenet_yu", "tinyzoo_plugins.models.yu:googlenet_yu", 2_892_136,
        report=YU, results=(Result(YU, "from scratch, 10 epochs", 49.4),), input_size=56,
        first_conv="stem.conv1.conv", stem_pools=("stem.pool",), classifier="fc",
        aux_classifiers=("aux1.fc2", "aux2.fc2"),
        description="Yu's half-width GoogLeNet with two auxiliary classifiers (model.aux_logits in training)",
    ),
    _scratch(
        "inception_v3_milani", "inception_milani", "tinyzoo_plugins.models.milani:inception_v3_milani", 2_958_536,
        report=MILANI, options={"dropout": "dropout before the head (0.2 = the report's 'regularized' run)"},
        results=(
            Result(MILANI, "from scratch, single best snapshot", 48.5),
            Result(MILANI, "from scratch, 9-snapshot ensemble", 52.2, 47.7),
        ),
        first_conv="stem.conv1.conv", stem_pools=("stem.pool1", "stem.pool2"), classifier="fc",
        description="Milani's shallower, narrower Inception-v3 for 64x64, BatchNorm before every ReLU",
    ),
    _scratch(
        "lenet5", "lenet", "tinyzoo_plugins.models.lenet:lenet5", 354_636,
        report=FLEURET, first_conv="features.conv1", stem_pools=("features.pool1", "features.pool2"),
        classifier="classifier.fc3", description="LeNet-5 adapted to 3x64x64 input",
    ),
]


CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


def _modern(name, family, module, params, weights, *, stems=ALL_STEMS, results=(), **kw):
    """A timm network with its default Hub weights; layer names and normalisation as timm's pretrained config."""
    return _timm(
        name, family, params, weights=weights, report=LITERATURE if results else None, results=results, stems=stems,
        builder_args=DYNAMIC_ARGS.get(module, {}), interpolation="bicubic",
        options={"drop_path_rate": "stochastic depth rate (timm's drop_path_rate), for fine-tuning"},
        description=f"{name} (timm, weights {weights})", **kw,
    )


def _vit(name, params, weights, *, module="vision_transformer", family="vit", **kw):
    return _modern(name, family, module, params, weights, first_conv="patch_embed.proj", classifier="head",
                   stages=("patch_embed", "blocks.0"), **kw)


EFFICIENTNET_LAYERS = dict(first_conv="conv_stem", classifier="classifier", stages=("blocks.1", "blocks.2", "blocks.4", "blocks.6"))
# What the networks that top Tiny ImageNet today look like; any other timm model is timm:<name>.
ARCHITECTURES += [
    _modern("convnext_tiny", "convnext", "convnext", 28_589_128, "convnext_tiny.in12k_ft_in1k",
            first_conv="stem.0", classifier="head.fc", stages=("stages.0", "stages.1", "stages.2", "stages.3")),
    _modern("efficientnet_b0", "efficientnet", "efficientnet", 5_288_548, "efficientnet_b0.ra_in1k",
            stems=UP2_STEMS, **EFFICIENTNET_LAYERS),
    _modern("tf_efficientnet_lite0", "efficientnet", "efficientnet", 4_652_008, "tf_efficientnet_lite0.in1k",
            stems=UP2_STEMS, mean=HALF, std=HALF, **EFFICIENTNET_LAYERS),
    _modern("swin_tiny_patch4_window7_224", "swin", "swin_transformer", 28_288_354, "swin_tiny_patch4_window7_224.ms_in1k",
            first_conv="patch_embed.proj", classifier="head.fc", stages=("layers.0", "layers.1", "layers.2", "layers.3")),
    _vit("deit_small_patch16_224", 22_050_664, "deit_small_patch16_224.fb_in1k", module="deit"),
    _vit("deit_base_patch16_224", 86_567_656, "deit_base_patch16_224.fb_in1k", module="deit",
         results=(Result(LITERATURE, "DeiT-B/16 fine-tuned at 224 px (upsampled), PUGD optimizer", 91.02),)),
    _vit("vit_base_patch16_224", 86_567_656, "vit_base_patch16_224.augreg2_in21k_ft_in1k", mean=HALF, std=HALF,
         results=(Result(LITERATURE, "ViT-B/16 fine-tuned at 224 px (upsampled), PUGD optimizer", 90.74),)),
    # Headless weights (num_classes 0): tinyzoo gives them a head.
    _vit("eva02_tiny_patch14_224", 5_502_144, "eva02_tiny_patch14_224.mim_in22k", module="eva", family="vit",
         num_classes=0, mean=CLIP_MEAN, std=CLIP_STD),
    _vit("vit_small_patch14_dinov2", 22_056_192, "vit_small_patch14_dinov2.lvd142m", num_classes=0, input_size=518),
]


@tinyzoo.hookimpl
def register_architectures(register):
    for spec in ARCHITECTURES:
        register(spec)
