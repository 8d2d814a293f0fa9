"""Kernel resampling for small stems: what bicubic and the pseudo-inverse resize keep."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tinyzoo.errors import TinyzooError
from tinyzoo.surgery.kernels import KernelStats, resample_kernel, resize_matrix

# (old kernel side, new kernel side): ResNet conv1, AlexNet conv1, ViT patch embedding.
STEMS = [(7, 3), (11, 3), (16, 4)]


def weight(old: int, out: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(out, 3, old, old, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("old,new", STEMS)
@pytest.mark.parametrize("method", ["bicubic", "pi"])
def test_shapes_and_dtype(old, new, method):
    w = weight(old)
    resampled, stats = resample_kernel(w, new, method)
    assert resampled.shape == (8, 3, new, new) and resampled.dtype == w.dtype
    assert stats.old_size == (old, old) and stats.new_size == (new, new) and stats.method == method
    assert stats.sum_ratio.shape == stats.norm_ratio.shape == (8,)


def test_non_square_size():
    resampled, stats = resample_kernel(weight(7), (3, 5), "pi")
    assert resampled.shape == (8, 3, 3, 5) and stats.new_size == (3, 5)


@pytest.mark.parametrize("old,new", STEMS)
def test_bicubic_is_interpolate_times_area_ratio(old, new):
    w = weight(old)
    interpolated = F.interpolate(w, size=(new, new), mode="bicubic", align_corners=False)
    rescaled, stats = resample_kernel(w, new, "bicubic", rescale=True)
    plain, plain_stats = resample_kernel(w, new, "bicubic", rescale=False)
    assert stats.scale == (old * old) / (new * new) and plain_stats.scale == 1.0
    assert torch.equal(rescaled, interpolated * stats.scale)
    assert torch.equal(plain, interpolated)


def test_constant_kernel_keeps_its_sum_under_bicubic_rescale():
    w = torch.full((4, 3, 7, 7), 0.5)
    resampled, stats = resample_kernel(w, 3, "bicubic")
    assert torch.allclose(resampled, torch.full_like(resampled, 0.5 * 49 / 9))
    for key in ("mean", "median", "min", "max", "overall"):
        assert stats.sum_kept[key] == pytest.approx(1.0, abs=1e-6)
    # Same values on 9 taps instead of 49, each 49/9 times larger: the norm grows by 7/3.
    assert stats.norm_kept["overall"] == pytest.approx(7 / 3, rel=1e-6)


def test_resize_matrix_is_the_antialiased_resize():
    x = torch.randn(5, 1, 16, 16, dtype=torch.float64)
    expected = F.interpolate(x, size=(4, 4), mode="bicubic", align_corners=False, antialias=True)
    assert torch.allclose(x.reshape(5, -1) @ resize_matrix(16, 4).T, expected.reshape(5, -1), atol=1e-12)


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b> over the spatial taps, per (filter, channel) pair, in float64."""
    return (a.double() * b.double()).sum(dim=(-2, -1))


def resize(x: torch.Tensor, new: int) -> torch.Tensor:
    batch = x.reshape(-1, 1, *x.shape[-2:]).double()
    out = F.interpolate(batch, size=(new, new), mode="bicubic", align_corners=False, antialias=True)
    return out.reshape(*x.shape[:-2], new, new)


@pytest.mark.parametrize("old,new", STEMS)
def test_pi_keeps_the_response_on_the_row_space_of_the_resize(old, new):
    """For x = B^T z (every patch the resize B does not lose information on): <resize(x), w'> == <x, w>."""
    w = weight(old)
    resampled, _ = resample_kernel(w, new, "pi")
    matrix = resize_matrix(old, new)
    z = torch.randn(*w.shape[:2], new * new, dtype=torch.float64)
    x = (z @ matrix).reshape(*w.shape[:2], old, old)
    expected = inner(x, w)
    assert torch.allclose(inner(resize(x, new), resampled), expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


@pytest.mark.parametrize("old,new", STEMS)
def test_pi_is_the_least_squares_solution(old, new):
    """w' minimises ||B^T w' - w||: the normal equations B (B^T w' - w) = 0 hold."""
    w = weight(old)
    resampled, _ = resample_kernel(w, new, "pi")
    matrix = resize_matrix(old, new)
    residual = resampled.double().reshape(-1, new * new) @ matrix - w.double().reshape(-1, old * old)
    assert (residual @ matrix.T).abs().max() < 1e-4 * w.abs().max()


def test_pi_keeps_every_response_when_the_kernel_grows():
    """Upsampling 3x3 -> 7x7: the row space is everything, so <resize(x), w'> == <x, w> for every x."""
    w = weight(3)
    resampled, _ = resample_kernel(w, 7, "pi")
    x = torch.randn(*w.shape, dtype=torch.float64)
    expected = inner(x, w)
    assert torch.allclose(inner(resize(x, 7), resampled), expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


def test_pi_ignores_rescale():
    w = weight(7)
    assert torch.equal(resample_kernel(w, 3, "pi", rescale=True)[0], resample_kernel(w, 3, "pi", rescale=False)[0])


def test_stats_are_json_ready_and_flag_zero_sum_filters():
    w = weight(7, out=4)
    w[0] -= w[0].mean()  # a zero-sum filter: its sum ratio means nothing
    _, stats = resample_kernel(w, 3, "bicubic")
    assert isinstance(stats, KernelStats)
    assert torch.isnan(stats.sum_ratio[0]) and torch.isfinite(stats.sum_ratio[1:]).all()
    data = stats.to_dict()
    assert data["sum_kept"]["zero_sum_filters"] == 1
    assert set(data) == {"method", "old_size", "new_size", "scale", "sum_kept", "norm_kept"}
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_bad_input_is_a_clear_error():
    with pytest.raises(TinyzooError, match="choose one of: bicubic, pi"):
        resample_kernel(weight(7), 3, "nearest")
    with pytest.raises(TinyzooError, match=r"\(out, in, kh, kw\)"):
        resample_kernel(torch.randn(3, 7, 7), 3)
    with pytest.raises(TinyzooError, match="positive int"):
        resample_kernel(weight(7), 0)


@pytest.mark.parametrize("method", ["bicubic", "pi"])
def test_meta_weights_give_a_meta_kernel_and_nan_stats(method):
    resampled, stats = resample_kernel(torch.empty(4, 3, 7, 7, device="meta"), 3, method)
    assert resampled.is_meta and resampled.shape == (4, 3, 3, 3)
    assert torch.isnan(stats.sum_ratio).all() and stats.norm_kept["overall"] != stats.norm_kept["overall"]


@pytest.mark.parametrize("method", ["bicubic", "pi"])
@pytest.mark.parametrize("old", [4, 7, 16])
def test_down_to_one_by_one_is_the_sum_over_the_patch(method, old):
    """A patchify stem made 1x1/1 (ConvNeXt's and Swin's 4x4/4): one tap holds the filter's sum, so a
    constant patch gets exactly the old response; both methods agree."""
    w = weight(old)
    new, stats = resample_kernel(w, 1, method)
    assert new.shape == (8, 3, 1, 1)
    torch.testing.assert_close(new, w.sum(dim=(2, 3), keepdim=True), rtol=1e-6, atol=1e-5)
    patch = torch.full((1, 3, old, old), 0.3)
    torch.testing.assert_close(F.conv2d(patch[..., :1, :1], new), F.conv2d(patch, w), rtol=1e-5, atol=1e-5)
    assert stats.sum_kept["overall"] == pytest.approx(1.0)
    assert resample_kernel(w, 1, "bicubic", rescale=False)[0].allclose(w.mean(dim=(2, 3), keepdim=True), atol=1e-6)
