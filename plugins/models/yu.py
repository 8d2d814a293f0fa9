"""Yu's from-scratch networks: the one-layer baseline, the reduced AlexNet, the half-width GoogLeNet.

Source: Yu, "Deep Convolutional Neural Networks for Tiny ImageNet Classification"
(shared/seeds/002_*): Table 1 (baseline), Table 2 and section 4.1.2 (reduced AlexNet),
section 4.1.3 and figures 1-2 (GoogLeNet with every module's output halved, two auxiliary
classifiers). Yu's ResNet-20 (section 4.1.4) is Zhai's bottleneck ResNet-20 (same text, cites
Zhai, 7x7 input conv, 1x1/3x3 blocks, 2-2-2 replicas), so it is ``zhai.resnet20_zhai``.

Choices where the report is vague:
- Baseline conv: Table 1 maps 64x64x3 to 56x56x16, which a 9x9 valid (unpadded) stride-1 conv
  does; "filter size of 16" in the text is the filter count. Native input 64.
- AlexNet: kernels 7, 5, 5, 3, 3 in Table 2's order; "padding is zero" read as zero (same)
  padding because Table 2 keeps 56x56 through the convolutions. ReLU after every conv and the
  two hidden FC layers; dropout 0.5 (rate not given) after each. Native input 56 (Table 2).
- GoogLeNet: figure 2 is not in the text, so the layout is the original GoogLeNet's at half
  width, with a stem for small input (7x7/1 conv, 1x1, 3x3, one 3x3/2 max pool) that gives the
  original 28/14/7 grids on 56x56 crops; conv-BN-ReLU everywhere (no LRN); the auxiliary heads
  follow the original (1x1 conv, FC, dropout 0.7, FC) at half width. Native input 56.
- Fully connected heads that expect a fixed grid get it from an adaptive average pool, which is
  the identity at the native input size and lets the nets run on 56x56 or 64x64.

Init: Kaiming normal (fan_out, relu) for convolutions, BatchNorm weight 1 / bias 0,
Linear layers keep PyTorch's default initialisation.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from tinyzoo_plugins.models.weight_init import initialize_weights


class YuBaseline(nn.Module):
    """Table 1: conv(16) - ReLU - 2x2 max pool - FC 1024 - ReLU - FC; returns ``(batch, num_classes)`` logits.

    Layers: ``features.conv``, ``grid_pool`` (to Table 1's 28x28), ``classifier.fc1``,
    ``classifier.out`` (the final ``nn.Linear``).
    """

    def __init__(self, num_classes: int = 200) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(3, 16, 9),
            relu=nn.ReLU(inplace=True),
            pool=nn.MaxPool2d(2),
        ))
        self.grid_pool = nn.AdaptiveAvgPool2d(28)
        self.classifier = nn.Sequential(OrderedDict(
            fc1=nn.Linear(16 * 28 * 28, 1024),
            relu1=nn.ReLU(inplace=True),
            out=nn.Linear(1024, num_classes),
        ))
        initialize_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.grid_pool(self.features(x)).flatten(1))


class ReducedAlexNet(nn.Module):
    """Table 2: five stride-1 convs, three 2x2 max pools, three FC layers; returns ``(batch, num_classes)`` logits.

    Layers: ``features.conv1a`` (first conv) .. ``features.conv3b``, ``grid_pool`` (to Table 2's
    7x7), ``classifier.fc1``, ``classifier.fc2``, ``classifier.out`` (the final ``nn.Linear``).
    """

    def __init__(self, num_classes: int = 200, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv1a=nn.Conv2d(3, 64, 7, padding=3),
            relu1a=nn.ReLU(inplace=True),
            conv1b=nn.Conv2d(64, 64, 5, padding=2),
            relu1b=nn.ReLU(inplace=True),
            pool1=nn.MaxPool2d(2),
            # Table 2 normalises after the pool, and only after the first two conv groups.
            bn1=nn.BatchNorm2d(64),
            conv2=nn.Conv2d(64, 128, 5, padding=2),
            relu2=nn.ReLU(inplace=True),
            pool2=nn.MaxPool2d(2),
            bn2=nn.BatchNorm2d(128),
            conv3a=nn.Conv2d(128, 256, 3, padding=1),
            relu3a=nn.ReLU(inplace=True),
            conv3b=nn.Conv2d(256, 256, 3, padding=1),
            relu3b=nn.ReLU(inplace=True),
            pool3=nn.MaxPool2d(2),
        ))
        self.grid_pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(OrderedDict(
            fc1=nn.Linear(256 * 7 * 7, 1024),
            relu1=nn.ReLU(inplace=True),
            drop1=nn.Dropout(dropout),
            fc2=nn.Linear(1024, 1024),
            relu2=nn.ReLU(inplace=True),
            drop2=nn.Dropout(dropout),
            out=nn.Linear(1024, num_classes),
        ))
        initialize_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.grid_pool(self.features(x)).flatten(1))


class ConvBNReLU(nn.Module):
    """Convolution (no bias) -> BatchNorm -> ReLU; spatial size kept when ``stride`` is 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class InceptionModule(nn.Module):
    """GoogLeNet module: 1x1 | 1x1->3x3 | 1x1->5x5 | 3x3 max pool->1x1, concatenated on channels.

    Output channels: ``ch1x1 + ch3x3 + ch5x5 + pool_proj``.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3_reduce: int, ch3x3: int,
                 ch5x5_reduce: int, ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, ch1x1, 1)
        self.branch3x3 = nn.Sequential(ConvBNReLU(in_channels, ch3x3_reduce, 1), ConvBNReLU(ch3x3_reduce, ch3x3, 3))
        # Yu, figure 1 / section 4.1.3: a true 5x5 convolution in the third branch.
        self.branch5x5 = nn.Sequential(ConvBNReLU(in_channels, ch5x5_reduce, 1), ConvBNReLU(ch5x5_reduce, ch5x5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)], dim=1)


class AuxiliaryClassifier(nn.Module):
    """Side head: 4x4 average pool grid -> 1x1 conv -> FC -> dropout 0.7 -> FC; returns ``(batch, num_classes)``.

    Layers: ``conv``, ``fc1``, ``fc2`` (the final ``nn.Linear``).
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        # GoogLeNet's 5x5/3 average pool yields 4x4 on its 14x14 grid; adaptive pooling keeps 4x4 at any size.
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = ConvBNReLU(in_channels, 64, 1)
        self.fc1 = nn.Linear(64 * 4 * 4, 512)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(self.pool(x)).flatten(1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): GoogLeNet's table with every width halved.
HALF_WIDTH_MODULES = OrderedDict(
    inception3a=(96, 32, 48, 64, 8, 16, 16),
    inception3b=(128, 64, 64, 96, 16, 48, 32),
    inception4a=(240, 96, 48, 104, 8, 24, 32),
    inception4b=(256, 80, 56, 112, 12, 32, 32),
    inception4c=(256, 64, 64, 128, 12, 32, 32),
    inception4d=(256, 56, 72, 144, 16, 32, 32),
    inception4e=(264, 128, 80, 160, 16, 64, 64),
    inception5a=(416, 128, 80, 160, 16, 64, 64),
    inception5b=(416, 192, 96, 192, 24, 64, 64),
)


class HalfWidthGoogLeNet(nn.Module):
    """GoogLeNet with halved widths and two auxiliary classifiers; ``forward`` returns main logits.

    ``forward(x)`` always returns the main classifier's logits ``(batch, num_classes)``. In
    training mode it also stores the auxiliary classifiers' logits of that same forward on
    ``self.aux_logits`` as a tuple ``(aux1, aux2)``, each ``(batch, num_classes)``, so a trainer
    can add their loss (GoogLeNet weights each by 0.3). In eval mode the auxiliary heads are not
    run and ``self.aux_logits`` is ``None``.

    Layers: ``stem.conv1.conv`` (first conv), ``stem.pool`` (the only stem pooling),
    ``inception3a`` .. ``inception5b``, ``pool3``/``pool4`` (grid halving between groups),
    ``aux1`` (after module 3, ``inception4a``) and ``aux2`` (after module 6, ``inception4d``)
    with final layers ``aux1.fc2`` / ``aux2.fc2``, ``pool`` (global average), ``dropout`` (0.4)
    and ``fc`` (the main ``nn.Linear`` classifier).
    """

    def __init__(self, num_classes: int = 200) -> None:
        super().__init__()
        # GoogLeNet's 7x7/2 conv and first max pool are dropped so 56x56 crops reach
        # inception3a at 28x28, the original's grid on 224x224 input.
        self.stem = nn.Sequential(OrderedDict(
            conv1=ConvBNReLU(3, 32, 7),
            conv2=ConvBNReLU(32, 32, 1),
            conv3=ConvBNReLU(32, 96, 3),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        ))
        for name, widths in HALF_WIDTH_MODULES.items():
            self.add_module(name, InceptionModule(*widths))
        self.pool3 = nn.MaxPool2d(3, stride=2, padding=1)
        self.pool4 = nn.MaxPool2d(3, stride=2, padding=1)
        # Yu, section 4.1.3: auxiliary classifiers after inception levels 3 and 6.
        self.aux1 = AuxiliaryClassifier(self.inception4a.out_channels, num_classes)
        self.aux2 = AuxiliaryClassifier(self.inception4d.out_channels, num_classes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(self.inception5b.out_channels, num_classes)
        self.aux_logits: tuple[Tensor, Tensor] | None = None
        initialize_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.pool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.training else None
        x = self.pool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        self.aux_logits = (aux1, aux2) if self.training else None
        return self.fc(self.dropout(self.pool(x).flatten(1)))


def yu_baseline(num_classes: int = 200) -> nn.Module:
    """Yu's Table 1 baseline (one conv layer, one hidden FC layer) for 64x64 input."""
    return YuBaseline(num_classes)


def alexnet_yu(num_classes: int = 200) -> nn.Module:
    """Yu's Table 2 reduced-capacity AlexNet for 56x56 input."""
    return ReducedAlexNet(num_classes)


def googlenet_yu(num_classes: int = 200) -> nn.Module:
    """Yu's half-width GoogLeNet for 56x56 input; auxiliary logits on ``model.aux_logits`` in training."""
    return HalfWidthGoogLeNet(num_classes)
