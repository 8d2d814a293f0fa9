"""LeNet5 for 3x64x64 Tiny ImageNet images.

Source: Fleuret, EE-559 lecture 7.2 "Networks for image classification"
(shared/seeds/004_*), the LeNet5 listing: 5x5 conv (6) - ReLU - 2x2 max pool - 5x5 conv (16) -
ReLU - 2x2 max pool - Linear 120 - ReLU - Linear 84 - ReLU - Linear (classes), for 1x28x28 input.

Adaptations (the lecture's net is for MNIST):
- The first conv reads 3 channels; on 64x64 input the features are 16x13x13, so the first
  Linear takes 2704 inputs instead of 256.
- An adaptive average pool to 13x13 before flattening is the identity at 64x64 and lets
  other sizes (e.g. 56x56 crops) reach the same Linear layer.

Init: Kaiming normal (fan_out, relu) for convolutions (biases 0), Linear layers keep
PyTorch's default initialisation.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from tinyzoo_plugins.models.weight_init import initialize_weights

NATIVE_GRID = 13  # (64 - 4) / 2 = 30, (30 - 4) / 2 = 13


class LeNet5(nn.Module):
    """LeNet5 for RGB input; ``forward`` returns logits ``(batch, num_classes)``.

    Layers: ``features.conv1`` (first conv), ``features.conv2``, ``grid_pool``,
    ``classifier.fc1``, ``classifier.fc2``, ``classifier.fc3`` (the final ``nn.Linear``).
    """

    def __init__(self, num_classes: int = 200) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(3, 6, 5),
            relu1=nn.ReLU(inplace=True),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(6, 16, 5),
            relu2=nn.ReLU(inplace=True),
            pool2=nn.MaxPool2d(2),
        ))
        self.grid_pool = nn.AdaptiveAvgPool2d(NATIVE_GRID)
        self.classifier = nn.Sequential(OrderedDict(
            fc1=nn.Linear(16 * NATIVE_GRID * NATIVE_GRID, 120),
            relu1=nn.ReLU(inplace=True),
            fc2=nn.Linear(120, 84),
            relu2=nn.ReLU(inplace=True),
            fc3=nn.Linear(84, num_classes),
        ))
        initialize_weights(self.features)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.grid_pool(self.features(x)).flatten(1))


def lenet5(num_classes: int = 200) -> nn.Module:
    """LeNet5 (Fleuret's lecture) with a 3-channel first conv, sized for 64x64 input."""
    return LeNet5(num_classes)
