"""Input upsampling in front of a network (``--stem resize``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyzoo.errors import TinyzooError
from tinyzoo.surgery.resize import InputResize, with_input_resize


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_input_resize_is_interpolate(mode):
    x = torch.randn(2, 3, 64, 64)
    expected = F.interpolate(x, size=(224, 224), mode=mode, align_corners=False)
    assert torch.equal(InputResize(224, mode)(x), expected)


def test_native_size_passes_unchanged():
    x = torch.randn(1, 3, 32, 32)
    assert InputResize(32)(x) is x


def test_with_input_resize_prefixes_state_dict_keys():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    wrapped = with_input_resize(model, 40, "bicubic")
    assert list(wrapped.state_dict()) == [f"net.{key}" for key in model.state_dict()]
    assert wrapped.net is model and wrapped.resize.size == 40
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(wrapped(x), model(F.interpolate(x, size=(40, 40), mode="bicubic", align_corners=False)))


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(TinyzooError, match="choose one of: bilinear, bicubic"):
        InputResize(224, "nearest")
