"""Test-time views: exact crop boxes, mirrors, resizing, batching and score maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate import views
from tinyzoo.evaluate.predictions import run_model
from tinyzoo.evaluate.scoring import view_scores


def arange_images(batch: int = 2, size: int = 64) -> torch.Tensor:
    """Pixel (c, y, x) of image b holds b * 1e6 + c * 1e4 + y * 100 + x: every crop is recognisable."""
    b, c, y, x = torch.meshgrid(torch.arange(batch), torch.arange(3), torch.arange(size), torch.arange(size), indexing="ij")
    return (b * 1_000_000 + c * 10_000 + y * 100 + x).to(torch.float64)


def origin(crop: torch.Tensor) -> tuple[int, int]:
    """(top, left) of a crop of arange_images, read back from its first pixel of channel 0."""
    value = int(crop[0, 0, 0].item()) % 10_000
    return value // 100, value % 100


def test_center_crop_is_the_middle_56_box():
    x = arange_images()
    out = views.center(x, 56)
    assert out.shape == (2, 3, 56, 56)
    assert torch.equal(out, x[:, :, 4:60, 4:60])


def test_ten_crop_boxes_order_and_mirrors():
    x = arange_images(batch=2)
    out = views.ten_crop(x, 56)
    assert out.shape == (20, 3, 56, 56)
    expected = [(4, 4), (0, 0), (0, 8), (8, 0), (8, 8)]  # center, TL, TR, BL, BR
    for v, (top, left) in enumerate(expected):
        for b in range(2):
            crop = out[v * 2 + b]
            assert torch.equal(crop, x[b, :, top:top + 56, left:left + 56])
            mirror = out[(v + 5) * 2 + b]
            assert torch.equal(mirror, x[b, :, top:top + 56, left:left + 56].flip(-1))
            # the mirror's first column is the box's last column
            assert origin(mirror) == (top, left + 55)
    assert [b.name for b in views.boxes("10crop", 64, 64, 56)][:5] == ["center", "top-left", "top-right", "bottom-left", "bottom-right"]


def test_twelve_crop_adds_full_and_its_mirror():
    x = arange_images(batch=3)
    out = views.twelve_crop(x, 56)
    assert out.shape == (36, 3, 56, 56)
    assert torch.equal(out[:30], views.ten_crop(x, 56))
    full = F.interpolate(x.float(), size=(56, 56), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(out[30:33].float(), full)
    assert torch.allclose(out[33:36].float(), full.flip(-1))


def test_full_at_the_image_size_is_the_image_and_uint8_becomes_float():
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    out = views.full(x, 64)
    assert out.dtype == torch.float32
    assert torch.equal(out, x.float())
    assert views.center(x, 56).dtype == torch.float32


def test_odd_margin_puts_the_extra_pixel_bottom_right():
    assert views.boxes("center", 64, 64, 57)[0][1:3] == (3, 3)
    assert [b[1:3] for b in views.boxes("10crop", 64, 64, 57)[:5]] == [(3, 3), (0, 0), (0, 7), (7, 0), (7, 7)]


def test_dense_is_the_whole_image():
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert torch.equal(views.make_views("dense", x, 56), x.float())


def test_bad_crop_and_view_set_are_one_line_errors():
    x = torch.zeros(1, 3, 64, 64)
    with pytest.raises(TinyzooError, match="crop size 65"):
        views.center(x, 65)
    with pytest.raises(TinyzooError, match="unknown view set '5crop'"):
        views.make_views("5crop", x, 56)


class CountingNet(torch.nn.Module):
    """Global-average colour -> 4 scores; counts forwards and rows."""

    def __init__(self, score_map: bool = False):
        super().__init__()
        self.head = torch.nn.Conv2d(3, 4, 1)
        self.score_map = score_map
        self.calls, self.rows = 0, 0
        self.tinyzoo_config = {"input_size": 56, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}

    def forward(self, x):
        self.calls += 1
        self.rows += x.shape[0]
        y = self.head(x)
        return y if self.score_map else y.mean(dim=(2, 3))


def test_twelve_crop_on_64x64_is_twelve_forwards_worth_in_one_batch():
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    net = CountingNet()
    probs = run_model(net, images, views="12crop", combine="softmax", device="cpu")
    assert probs.shape == (5, 4)
    assert net.rows == 12 * 5
    assert net.calls == 1
    # a forward budget of 24 rows holds 2 images' 12 views: 3 forwards for 5 images
    net = CountingNet()
    run_model(net, images, views="12crop", combine="softmax", device="cpu", batch_rows=24)
    assert (net.calls, net.rows) == (3, 60)


def test_score_map_cells_count_as_views():
    out = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).reshape(2, 4, 3, 3)  # (B, K, h, w)
    scores = view_scores(out, batch=2)
    assert scores.shape == (9, 2, 4)
    assert torch.equal(scores[5, 1], out[1, :, 1, 2])
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    net = CountingNet(score_map=True)
    probs = run_model(net, images, views="dense", combine="logits", device="cpu")
    assert net.rows == 3 and probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
