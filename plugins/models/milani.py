"""Milani's from-scratch network: a shallower, narrower Inception-v3 for 64x64 input.

Source: Milani, "The Power of Inception" (shared/seeds/003_*), section 3.1 and figures 3(b)
and 4 (the four Inception-v3 layer types: type-1, type-2 with n=7, type-3, "inception dim"),
section 3.2 (BatchNorm before every ReLU, no dropout in the "Baseline"), section 3.3
(the "Regularized" run adds dropout with keep probability 0.8 before the FC layer).

Choices where the report is vague (figure 3(b)'s layer list is not in the text):
- Depth: a 4-conv stem (no stride in the first conv, two 3x3/2 max pools: 64 -> 32 -> 16), then
  two type-1 layers at 16x16, a dim layer, two type-2 layers at 8x8, a dim layer and one type-3
  layer at 4x4: 7 inception layers against Inception-v3's 11, and no side classifier.
- Widths: about half of Inception-v3's at each layer, growing with depth (128 -> 144 -> 384
  -> 640 -> 1024 channels).
- Both grid reductions use figure 4(d)'s "inception dim" layout (1x1 -> 3x3/2 | 1x1 -> 3x3 ->
  3x3/2 | 3x3/2 max pool); the pooling branch of the other types is a 3x3 average pool.
- Native input 64x64 (section 3.1); global average pooling makes any size work.

Init: Kaiming normal (fan_out, relu) for convolutions, BatchNorm weight 1 / bias 0,
the Linear head keeps PyTorch's default initialisation.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from tinyzoo_plugins.models.weight_init import initialize_weights


class ConvBNReLU(nn.Module):
    """Convolution (no bias) -> BatchNorm -> ReLU; ``kernel_size`` may be ``(height, width)``.

    With ``stride`` 1 the spatial size is kept (odd kernels, half padding).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1) -> None:
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.conv = nn.Conv2d(in_channels, out_channels, (kh, kw), stride=stride,
                              padding=(kh // 2, kw // 2), bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


def average_pool_branch(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 stride-1 average pool followed by a 1x1 ConvBNReLU; keeps the spatial size."""
    return nn.Sequential(
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        ConvBNReLU(in_channels, out_channels, 1),
    )


class InceptionType1(nn.Module):
    """Figure 4(a): 1x1 | 1x1->3x3 | 1x1->3x3->3x3 | pool->1x1; ``out_channels`` = sum of branches."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3_reduce: int, ch3x3: int,
                 double_reduce: int, double3x3: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, ch1x1, 1)
        self.branch3x3 = nn.Sequential(ConvBNReLU(in_channels, ch3x3_reduce, 1), ConvBNReLU(ch3x3_reduce, ch3x3, 3))
        self.branch_double3x3 = nn.Sequential(
            ConvBNReLU(in_channels, double_reduce, 1),
            ConvBNReLU(double_reduce, double3x3, 3),
            ConvBNReLU(double3x3, double3x3, 3),
        )
        self.branch_pool = average_pool_branch(in_channels, pool_proj)
        self.out_channels = ch1x1 + ch3x3 + double3x3 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch_double3x3(x), self.branch_pool(x)], 1)


class InceptionType2(nn.Module):
    """Figure 4(b), n=7: 1x1 | 1x1->1xn->nx1 | 1x1->(nx1->1xn)x2 | pool->1x1; ``out_channels`` = 4 * ``out_branch``."""

    def __init__(self, in_channels: int, mid_channels: int, out_branch: int, n: int = 7) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, out_branch, 1)
        self.branch_nxn = nn.Sequential(
            ConvBNReLU(in_channels, mid_channels, 1),
            ConvBNReLU(mid_channels, mid_channels, (1, n)),
            ConvBNReLU(mid_channels, out_branch, (n, 1)),
        )
        self.branch_double_nxn = nn.Sequential(
            ConvBNReLU(in_channels, mid_channels, 1),
            ConvBNReLU(mid_channels, mid_channels, (n, 1)),
            ConvBNReLU(mid_channels, mid_channels, (1, n)),
            ConvBNReLU(mid_channels, mid_channels, (n, 1)),
            ConvBNReLU(mid_channels, out_branch, (1, n)),
        )
        self.branch_pool = average_pool_branch(in_channels, out_branch)
        self.out_channels = 4 * out_branch

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch_nxn(x), self.branch_double_nxn(x), self.branch_pool(x)], 1)


class InceptionType3(nn.Module):
    """Figure 4(c): 1x1 | 1x1->{1x3, 3x1} | 1x1->3x3->{1x3, 3x1} | pool->1x1; ``out_channels`` = sum of outputs."""

    def __init__(self, in_channels: int, ch1x1: int, split_reduce: int, split: int,
                 double_reduce: int, double_split: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, ch1x1, 1)
        self.split_reduce = ConvBNReLU(in_channels, split_reduce, 1)
        self.split_1x3 = ConvBNReLU(split_reduce, split, (1, 3))
        self.split_3x1 = ConvBNReLU(split_reduce, split, (3, 1))
        self.double_reduce = nn.Sequential(
            ConvBNReLU(in_channels, double_reduce, 1),
            ConvBNReLU(double_reduce, double_split, 3),
        )
        self.double_1x3 = ConvBNReLU(double_split, double_split, (1, 3))
        self.double_3x1 = ConvBNReLU(double_split, double_split, (3, 1))
        self.branch_pool = average_pool_branch(in_channels, pool_proj)
        self.out_channels = ch1x1 + 2 * split + 2 * double_split + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        split = self.split_reduce(x)
        double = self.double_reduce(x)
        return torch.cat([
            self.branch1x1(x),
            self.split_1x3(split), self.split_3x1(split),
            self.double_1x3(double), self.double_3x1(double),
            self.branch_pool(x),
        ], 1)


class InceptionDim(nn.Module):
    """Figure 4(d): halves the grid; 1x1->3x3/2 | 1x1->3x3->3x3/2 | 3x3/2 max pool (passes ``in_channels``)."""

    def __init__(self, in_channels: int, single_reduce: int, single: int, double_reduce: int, double: int) -> None:
        super().__init__()
        self.branch3x3 = nn.Sequential(
            ConvBNReLU(in_channels, single_reduce, 1),
            ConvBNReLU(single_reduce, single, 3, stride=2),
        )
        self.branch_double3x3 = nn.Sequential(
            ConvBNReLU(in_channels, double_reduce, 1),
            ConvBNReLU(double_reduce, double, 3),
            ConvBNReLU(double, double, 3, stride=2),
        )
        self.branch_pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.out_channels = single + double + in_channels

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x), self.branch_double3x3(x), self.branch_pool(x)], 1)


class MilaniInception(nn.Module):
    """Reduced Inception-v3 for 64x64 input; ``forward`` returns logits ``(batch, num_classes)``.

    Layers: ``stem.conv1.conv`` (first conv), ``stem.pool1`` / ``stem.pool2`` (the stem's max
    pools), ``type1a``, ``type1b``, ``dim1``, ``type2a``, ``type2b``, ``dim2``, ``type3``,
    ``pool`` (global average), ``dropout`` (p=0 unless asked) and ``fc`` (the ``nn.Linear``).
    """

    def __init__(self, num_classes: int = 200, dropout: float = 0.0) -> None:
        super().__init__()
        self.stem = nn.Sequential(OrderedDict(
            conv1=ConvBNReLU(3, 32, 3),
            conv2=ConvBNReLU(32, 64, 3),
            pool1=nn.MaxPool2d(3, stride=2, padding=1),
            conv3=ConvBNReLU(64, 80, 1),
            conv4=ConvBNReLU(80, 96, 3),
            pool2=nn.MaxPool2d(3, stride=2, padding=1),
        ))
        self.type1a = InceptionType1(96, 32, 24, 32, 32, 48, 16)
        self.type1b = InceptionType1(self.type1a.out_channels, 32, 24, 32, 32, 48, 32)
        self.dim1 = InceptionDim(self.type1b.out_channels, 64, 192, 32, 48)
        self.type2a = InceptionType2(self.dim1.out_channels, 64, 96)
        self.type2b = InceptionType2(self.type2a.out_channels, 80, 96)
        self.dim2 = InceptionDim(self.type2b.out_channels, 96, 160, 96, 96)
        self.type3 = InceptionType3(self.dim2.out_channels, 160, 192, 192, 224, 192, 96)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.type3.out_channels, num_classes)
        initialize_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.dim1(self.type1b(self.type1a(x)))
        x = self.dim2(self.type2b(self.type2a(x)))
        x = self.type3(x)
        return self.fc(self.dropout(self.pool(x).flatten(1)))


def inception_v3_milani(num_classes: int = 200, dropout: float = 0.0) -> nn.Module:
    """Milani's reduced Inception-v3 for 64x64 input; ``dropout=0.2`` is the "Regularized" run (keep 0.8)."""
    return MilaniInception(num_classes, dropout)
