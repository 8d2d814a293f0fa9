"""Zhai's from-scratch ResNets: ResNet-20 and ResNet-38 built from bottleneck blocks.

Source: Zhai, "Going Deeper on the Tiny Imagenet Challenge" (shared/seeds/000_*), section 3.2
(building block, stride placement, projection shortcuts), section 4.1 and figure 4 (ResNet-20:
2-2-2 replicas; ResNet-38: 3-5-4) and section 4.2 ("less filters": every width divided by 4).

Choices where the report is vague:
- Stage widths N = 64, 128, 256 (the first three of ResNet-152's four; "less replicas and
  less spatial poolings"), each block producing 4N channels.
- Stem kept as the "standard beginning of all ResNet variants" (7x7/2 conv + 3x3/2 max pool):
  section 5.2 describes that stem on its 57x57 crops and only proposes removing it as future work.
- The block's third conv is conv-bn, ReLU after the residual sum (as in He et al.), although
  section 3.2 writes the 4N conv as conv-bn-relu.
- Native input 64x64 (random 57x57 crops in training); global average pooling makes any size work.

Init: Kaiming normal (fan_out, relu) for convolutions, BatchNorm weight 1 / bias 0,
the Linear head keeps PyTorch's default initialisation.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from tinyzoo_plugins.models.weight_init import initialize_weights

EXPANSION = 4
STAGE_WIDTHS = (64, 128, 256)
STEM_WIDTH = 64


def scale_channels(channels: int, width: float) -> int:
    """Return ``channels * width`` rounded to the nearest integer, at least 1."""
    return max(1, int(round(channels * width)))


class Bottleneck(nn.Module):
    """1x1 (N) -> 3x3 (N) -> 1x1 (4N) residual block; output has ``4 * mid_channels`` channels."""

    def __init__(self, in_channels: int, mid_channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = mid_channels * EXPANSION
        # Zhai, section 3.2: the first 1x1 convolution carries the stride (Caffe ResNet layout).
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                bn=nn.BatchNorm2d(out_channels),
            ))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class ZhaiResNet(nn.Module):
    """Bottleneck ResNet with three stages; ``forward`` returns logits ``(batch, num_classes)``.

    Layers: ``stem`` (``stem.conv``, ``stem.bn``, ``stem.relu``, ``stem.pool``),
    ``stage1``..``stage3`` (sequences of :class:`Bottleneck`), ``pool`` (global average) and
    ``fc`` (the ``nn.Linear`` classifier).
    """

    def __init__(self, replicas: tuple[int, int, int], num_classes: int = 200, width: float = 1.0) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive (1.0 = the report's widths, 0.25 = 'less filters'), got {width}")
        stem_channels = scale_channels(STEM_WIDTH, width)
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False),
            bn=nn.BatchNorm2d(stem_channels),
            relu=nn.ReLU(inplace=True),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        ))
        in_channels = stem_channels
        for index, (count, base_width) in enumerate(zip(replicas, STAGE_WIDTHS), start=1):
            mid_channels = scale_channels(base_width, width)
            # The first stage follows the stem's max pool, so only later stages halve the grid.
            stride = 1 if index == 1 else 2
            blocks = []
            for block_index in range(count):
                blocks.append(Bottleneck(in_channels, mid_channels, stride if block_index == 0 else 1))
                in_channels = mid_channels * EXPANSION
            self.add_module(f"stage{index}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        initialize_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.pool(x).flatten(1))


def resnet20_zhai(num_classes: int = 200, width: float = 1.0) -> nn.Module:
    """Zhai's ResNet-20 (2-2-2 bottleneck blocks, 1 + 6*3 + 1 layers); ``width=0.25`` is "less filters"."""
    return ZhaiResNet((2, 2, 2), num_classes=num_classes, width=width)


def resnet38_zhai(num_classes: int = 200, width: float = 1.0) -> nn.Module:
    """Zhai's ResNet-38 (3-5-4 bottleneck blocks, 1 + 12*3 + 1 layers); ``width=0.25`` is "less filters"."""
    return ZhaiResNet((3, 5, 4), num_classes=num_classes, width=width)
