"""The initialisation the reports' from-scratch networks share."""

from __future__ import annotations

from torch import nn


def initialize_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, relu) convolutions with zero bias, BatchNorm 1/0; Linear layers untouched."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
