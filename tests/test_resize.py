"""Input upsampling in front of a network (``--stem resize``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tinyzoo.errors import TinyzooError
from tinyzoo.surgery.resize import InputResize


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_input_resize_is_interpolate(mode):
    x = torch.randn(2, 3, 64, 64)
    expected = F.interpolate(x, size=(224, 224), mode=mode, align_corners=False)
    assert torch.equal(InputResize(224, mode)(x), expected)


def test_native_size_passes_unchanged():
    x = torch.randn(1, 3, 32, 32)
    assert InputResize(32)(x) is x


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(TinyzooError, match="choose one of: bicubic, bilinear"):
        InputResize(224, "nearest")
