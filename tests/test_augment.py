"""Batched augmentation and the batch loader: shapes, exact crops, statistics, seeds, sharding."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinyzoo.data.augment import CONFIG_KEYS, IMAGENET_EIGVAL, IMAGENET_EIGVEC, Pipeline, axis_aligned_grid, pixel_centres, slice_windows, take_windows
from tinyzoo.data.cache import SplitStats
from tinyzoo.data.loader import BatchLoader
from tinyzoo.errors import TinyzooError
from tinyzoo.specs import IMAGENET_MEAN, IMAGENET_STD

RAW = {"normalize": "none", "flip": False}  # output * 255 is the source pixels


def batch(n=32, seed=0, size=64):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def as_uint8(x: torch.Tensor) -> torch.Tensor:
    """NCHW float on 0..1 back to NHWC uint8."""
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def find_window(src: torch.Tensor, crop: torch.Tensor):
    """(y, x, flipped) of the window of ``src`` (H, W, 3) equal to ``crop``, or None."""
    c = crop.shape[0]
    for y in range(src.shape[0] - c + 1):
        for x in range(src.shape[1] - c + 1):
            window = src[y:y + c, x:x + c]
            if torch.equal(window, crop):
                return y, x, False
            if torch.equal(window.flip(1), crop):
                return y, x, True
    return None


def stats_of(images: torch.Tensor) -> SplitStats:
    x = images.double().numpy()
    flat = x.reshape(-1, 3)
    return SplitStats.from_sums(x.sum(axis=0), flat.T @ flat, len(x))


# --- geometry ---------------------------------------------------------------------------


def test_random_crops_are_exact_sub_windows_with_per_sample_offsets():
    images = batch(24)
    out = Pipeline.from_config({**RAW, "crop": 56, "flip": True})(images, gen())
    assert out.shape == (24, 3, 56, 56) and out.dtype == torch.float32 and out.is_contiguous()
    found = [find_window(src, crop) for src, crop in zip(images, as_uint8(out))]
    assert all(f is not None for f in found)
    assert len({(y, x) for y, x, _ in found}) > 12  # each image its own offset
    assert {flip for _, _, flip in found} == {True, False}


def test_57_crops_for_zhai():
    images = batch(8)
    out = Pipeline.from_config({**RAW, "crop": 57})(images, gen())
    assert out.shape == (8, 3, 57, 57)
    assert all(find_window(s, c) is not None for s, c in zip(images, as_uint8(out)))


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_64_crops_with_padding_are_windows_of_the_padded_image(mode):
    images = batch(12)
    out = Pipeline.from_config({**RAW, "crop": 64, "padding": 4, "padding_mode": mode})(images, gen())
    assert out.shape == (12, 3, 64, 64)
    np_mode = {"constant": "constant", "edge": "edge", "reflect": "reflect"}[mode]
    for src, crop in zip(images, as_uint8(out)):
        padded = torch.from_numpy(np.pad(src.numpy(), ((4, 4), (4, 4), (0, 0)), mode=np_mode))
        assert find_window(padded, crop) is not None


def test_flip_probability_is_one_half():
    images = batch(1000, size=8)
    out = as_uint8(Pipeline.from_config({"normalize": "none", "crop": 8})(images, gen(3)))
    flipped = torch.tensor([torch.equal(o, s.flip(1)) for o, s in zip(out, images)])
    kept = torch.tensor([torch.equal(o, s) for o, s in zip(out, images)])
    assert bool((flipped ^ kept).all())
    assert 0.45 < flipped.float().mean().item() < 0.55


def test_ten_crops_use_only_the_four_corners_and_the_center_mirrored_or_not():
    images = batch(200, size=16)
    out = as_uint8(Pipeline.from_config({"normalize": "none", "crop": 12, "crop_mode": "ten"})(images, gen()))
    views = {find_window(s, c) for s, c in zip(images, out)}
    corners = {(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)}
    assert views == {(y, x, f) for y, x in corners for f in (False, True)}  # all ten, nothing else


def test_eval_mode_is_the_center_crop_and_deterministic():
    images = batch(4)
    pipeline = Pipeline.from_config({"crop": 56, "jitter": 0.4, "lighting": 0.1, "mixup": 0.2}).eval()
    a, b = pipeline(images, gen(1)), pipeline(images, gen(2))
    assert torch.equal(a, b)
    raw = Pipeline.from_config({"normalize": "none", "crop": 56}).eval()(images)
    assert torch.equal(as_uint8(raw), images[:, 4:60, 4:60])
    full = Pipeline.from_config({"normalize": "none", "crop": 56, "eval_crop": "resize"}).eval()(images)
    expected = F.interpolate(images.permute(0, 3, 1, 2).float(), size=(56, 56), mode="bilinear", antialias=True) / 255
    torch.testing.assert_close(full, expected)


def test_random_resized_crop_of_the_whole_image_is_a_bilinear_resize():
    images = batch(4)
    pipeline = Pipeline.from_config({**RAW, "crop": 48, "crop_mode": "resized", "scale": [1.0, 1.0], "ratio": [1.0, 1.0]})
    expected = F.interpolate(images.permute(0, 3, 1, 2).float(), size=(48, 48), mode="bilinear", align_corners=False) / 255
    torch.testing.assert_close(pipeline(images, gen()), expected, atol=1e-4, rtol=0)


def test_random_resized_crops_vary_in_scale():
    # a horizontal ramp: a crop's left-to-right range tells its width
    ramp = torch.arange(64, dtype=torch.uint8).mul(4).view(1, 1, 64, 1).expand(256, 64, 64, 3).contiguous()
    out = Pipeline.from_config({**RAW, "crop": 32, "crop_mode": "resized", "scale": [0.25, 1.0], "ratio": [1.0, 1.0]})(ramp, gen())
    width = (out[:, 0, 16, -1] - out[:, 0, 16, 0]) * 255 / 4  # in source pixels
    assert width.min() < 40 and width.max() > 55


# --- seeds ----------------------------------------------------------------------------------


def test_same_seed_same_batch_other_seed_other_batch():
    images = batch(16)
    pipeline = Pipeline.from_config({"crop": 56, "jitter": 0.4, "lighting": 0.1, "crop_mode": "resized"})
    assert torch.equal(pipeline(images, gen(7)), pipeline(images, gen(7)))
    assert not torch.equal(pipeline(images, gen(7)), pipeline(images, gen(8)))


def test_the_gpu_crop_gather_equals_the_cpu_one():
    """crop_windows runs take_windows on a GPU and slice_windows on the CPU: both must give the same windows."""
    images = batch(16).permute(0, 3, 1, 2)
    padded = F.pad(images, (3, 3, 3, 3), mode="reflect")
    mean = torch.rand(1, 3, 70, 70).expand(16, -1, -1, -1)  # the per-pixel mean: float, stride 0 over the batch
    for src, size in ((images, 56), (padded, 64), (mean, 57)):
        limit = src.shape[-1] - size + 1
        oy, ox = torch.randint(0, limit, (16,), generator=gen(1)), torch.randint(0, limit, (16,), generator=gen(2))
        flips = torch.rand(16, generator=gen(3)) < 0.5
        on_cpu, as_on_gpu = slice_windows(src, oy, ox, size, flips), take_windows(src, oy, ox, size, flips)
        assert on_cpu.shape == (16, 3, size, size) and torch.equal(on_cpu, as_on_gpu)
        i = int(flips.nonzero()[0, 0])
        assert torch.equal(on_cpu[i], src[i, :, oy[i]:oy[i] + size, ox[i]:ox[i] + size].flip(-1))


def test_the_elementwise_grid_equals_affine_grid():
    params = torch.rand(8, 4) * 2 - 1
    theta = torch.zeros(8, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = params.unbind(1)
    expected = F.affine_grid(theta, [8, 3, 40, 40], align_corners=False)
    torch.testing.assert_close(axis_aligned_grid(params, pixel_centres(40)), expected, atol=1e-6, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_gives_the_cpu_batch():
    images = batch(16)
    pipeline = Pipeline.from_config({"crop": 56, "jitter": 0.4, "lighting": 0.1})
    torch.testing.assert_close(pipeline(images.cuda(), gen(5)).cpu(), pipeline(images, gen(5)), atol=1e-4, rtol=1e-4)


# --- colour ----------------------------------------------------------------------------------


def test_normalize_imagenet_maps_the_imagenet_mean_to_zero():
    mean_image = torch.tensor([round(m * 255) for m in IMAGENET_MEAN], dtype=torch.uint8).expand(2, 64, 64, 3).contiguous()
    out = Pipeline.from_config({"crop": 64, "flip": False})(mean_image, gen())
    assert out.abs().max() < 0.01
    white = torch.full((1, 64, 64, 3), 255, dtype=torch.uint8)
    out = Pipeline.from_config({"crop": 64})(white, gen())
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]))


def test_normalize_dataset_gives_zero_mean_unit_std_per_channel():
    images = torch.from_numpy(np.random.default_rng(1).normal([90, 120, 160], [20, 30, 40], (64, 64, 64, 3)).clip(0, 255).astype(np.uint8))
    out = Pipeline.from_config({"crop": 64, "normalize": "dataset"}, stats=stats_of(images)).eval()(images)
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)


def test_normalize_pixel_subtracts_the_mean_image_at_each_crop_offset():
    gradient = torch.linspace(0, 200, 64).view(1, 64, 1, 1).expand(32, 64, 64, 3)
    images = (gradient + torch.from_numpy(np.random.default_rng(2).integers(0, 40, (32, 64, 64, 3)))).to(torch.uint8)
    stats = stats_of(images)
    out = Pipeline.from_config({"crop": 57, "normalize": "pixel"}, stats=stats)(images, gen())
    # the mean image is a vertical gradient; with it removed no row is brighter than another
    row_means = out.mean(dim=(0, 1, 3))
    assert row_means.abs().max() < 0.15
    raw = Pipeline.from_config({"crop": 57, "normalize": "dataset"}, stats=stats)(images, gen())
    assert raw.mean(dim=(0, 1, 3)).abs().max() > 1.0


def test_brightness_factors_are_per_sample_and_uniform():
    images = torch.full((400, 8, 8, 3), 100, dtype=torch.uint8)
    out = Pipeline.from_config({"normalize": "none", "crop": 8, "jitter": {"brightness": 0.5}})(images, gen())
    factors = out.mean(dim=(1, 2, 3)) * 255 / 100
    assert factors.min() >= 0.5 and factors.max() <= 1.5
    assert abs(factors.mean().item() - 1) < 0.05 and abs(factors.std().item() - 1 / 12**0.5) < 0.04


def test_contrast_keeps_the_mean_and_saturation_keeps_the_luma():
    # mid-range values, so no factor pushes a pixel past 0 or 1 and clamping stays out of it
    images = torch.from_numpy(np.random.default_rng(3).integers(100, 156, (64, 16, 16, 3), dtype=np.uint8))
    x = images.permute(0, 3, 1, 2).float() / 255
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    contrast = Pipeline.from_config({"normalize": "none", "crop": 16, "flip": False, "jitter": {"contrast": 0.3}})(images, gen())
    c_luma = 0.299 * contrast[:, 0] + 0.587 * contrast[:, 1] + 0.114 * contrast[:, 2]
    torch.testing.assert_close(c_luma.mean(dim=(1, 2)), luma.mean(dim=(1, 2)), atol=2e-3, rtol=0)
    assert (contrast.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))).std() > 0.05  # per-sample factors
    sat = Pipeline.from_config({"normalize": "none", "crop": 16, "flip": False, "jitter": {"saturation": 0.3}})(images, gen())
    s_luma = 0.299 * sat[:, 0] + 0.587 * sat[:, 1] + 0.114 * sat[:, 2]
    torch.testing.assert_close(s_luma, luma, atol=2e-3, rtol=0)


def test_pca_lighting_shifts_each_image_along_the_imagenet_components():
    images = torch.full((2000, 4, 4, 3), 128, dtype=torch.uint8)
    out = Pipeline.from_config({"normalize": "none", "crop": 4, "lighting": 0.1})(images, gen())
    shift = out[:, :, 0, 0] - 128 / 255  # one RGB shift per image, the same on every pixel
    assert torch.allclose(out, shift[:, :, None, None] + 128 / 255, atol=1e-6)
    alpha = shift @ torch.tensor(IMAGENET_EIGVEC)  # back to component coordinates
    expected_std = 0.1 * torch.tensor(IMAGENET_EIGVAL)
    torch.testing.assert_close(alpha.std(dim=0), expected_std, rtol=0.08, atol=1e-5)
    assert (alpha.mean(dim=0).abs() < 3 * expected_std / 2000**0.5).all()


# --- mixing ------------------------------------------------------------------------------------


def test_mixup_mixes_images_and_targets_with_one_lambda():
    images = batch(16)
    labels = torch.arange(16) % 4
    plain = Pipeline.from_config({"crop": 64, "flip": False})(images, gen())
    mixed, targets = Pipeline.from_config({"crop": 64, "flip": False, "mixup": 0.4})(images, gen(), labels=labels, num_classes=4)
    assert targets.shape == (16, 4) and targets.dtype == torch.float32
    torch.testing.assert_close(targets.sum(1), torch.ones(16))
    lam = targets[torch.arange(16), labels]  # the own-class weight (>= lam when the partner shares the class)
    own = lam.min().item()
    partner_weight = 1 - own
    # every mixed image is own*self + (1-own)*some other image of the batch
    for i in range(16):
        residual = (mixed[i] - own * plain[i]) / max(partner_weight, 1e-6)
        assert min((residual - plain[j]).abs().max().item() for j in range(16)) < 1e-3


def test_cutmix_pastes_one_box_and_weights_targets_by_its_area():
    images = batch(8)
    labels = torch.arange(8)
    out, targets = Pipeline.from_config({**RAW, "crop": 64, "cutmix": 1.0})(images, gen(4), labels=labels, num_classes=8)
    src = images.permute(0, 3, 1, 2).float() / 255
    changed = (out - src).abs().amax(dim=1) > 1e-4  # (N, H, W): pixels taken from the partner
    box = changed.any(dim=0)
    ys, xs = box.nonzero(as_tuple=True)
    area = int((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    assert int(box.sum()) == area and 0 < area < 4096  # one rectangle, the same for the whole batch
    own = targets[torch.arange(8), labels]
    for i in range(8):
        if changed[i].any():  # an image paired with itself is unchanged and keeps a one-hot target
            torch.testing.assert_close(own[i], torch.tensor(1 - area / 4096))
            assert torch.equal(changed[i], box)
        else:
            assert own[i] == 1


def test_mixing_without_labels_is_refused():
    with pytest.raises(TinyzooError, match="mixup/cutmix need the labels"):
        Pipeline.from_config({"mixup": 0.2})(batch(2), gen())


# --- config ----------------------------------------------------------------------------------------


def test_config_round_trips_and_defaults_are_documented():
    cfg = {"crop": 56, "padding": 0, "flip": True, "jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4},
           "lighting": 0.1, "normalize": "imagenet", "mixup": 0.0, "cutmix": 0.0}
    pipeline = Pipeline.from_config(cfg)
    resolved = pipeline.to_config()
    assert set(resolved) <= set(CONFIG_KEYS)
    assert Pipeline.from_config(resolved) == pipeline
    assert Pipeline.from_config({}) == Pipeline()
    assert Pipeline.from_config({"jitter": 0.2}).saturation == 0.2


@pytest.mark.parametrize(("cfg", "message"), [
    ({"crops": 56}, "augmentation config: unknown key 'crops'; did you mean 'crop'?"),
    ({"crop": "56"}, "augmentation config: crop must be an integer >= 1, got '56'"),
    ({"normalize": "zhai"}, "augmentation config: normalize must be one of imagenet, dataset, pixel, none, custom; got 'zhai'"),
    ({"crop": 80}, "augmentation config: crop 80 is larger than the 64x64 image plus padding 0 on each side"),
    ({"jitter": {"hue": 0.1}}, "augmentation config: unknown key jitter.hue; expected brightness, contrast, saturation"),
    ({"normalize": "pixel"}, "augmentation config: normalize = 'pixel' needs the training split's statistics: "
                             "Pipeline.from_config(cfg, stats=open_split(root, 'train'))"),
    ({"crop_mode": "ten", "padding": 4}, "augmentation config: padding works with crop_mode 'random' only, not 'ten'"),
])
def test_bad_config_names_the_key(cfg, message):
    with pytest.raises(TinyzooError) as err:
        Pipeline.from_config(cfg)
    assert str(err.value) == message


# --- loader ------------------------------------------------------------------------------------------


def dataset(n=50, classes=5):
    return SimpleNamespace(images=batch(n, size=8).numpy(), labels=np.arange(n) % classes, wnids=[f"n{i}" for i in range(classes)])


def test_loader_covers_the_split_once_per_epoch_in_a_seeded_order():
    data = dataset()
    loader = BatchLoader(data, 16, shuffle=True, seed=1, pipeline=None)
    assert len(loader) == 4
    seen = torch.cat([images for images, _ in loader])
    assert sorted(bytes(s.numpy()) for s in seen) == sorted(bytes(s) for s in data.images)
    first = [labels.tolist() for _, labels in loader]
    loader.set_epoch(1)
    assert [labels.tolist() for _, labels in loader] != first
    loader.set_epoch(0)
    assert [labels.tolist() for _, labels in loader] == first


def test_loader_batches_are_reproducible_with_or_without_prefetch():
    data = dataset()
    pipeline = Pipeline.from_config({"crop": 6, "jitter": 0.3})
    a = list(BatchLoader(data, 16, shuffle=True, seed=3, pipeline=pipeline, prefetch=0))
    b = list(BatchLoader(data, 16, shuffle=True, seed=3, pipeline=pipeline, prefetch=2))
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert a[0][0].shape == (16, 3, 6, 6) and a[-1][0].shape == (2, 3, 6, 6)


def test_loader_drop_last_and_leaving_early():
    loader = BatchLoader(dataset(), 16, shuffle=True, drop_last=True, prefetch=2)
    assert len(loader) == 3 and [len(labels) for _, labels in loader] == [16, 16, 16]
    for _ in loader:
        break  # the prefetch thread stops instead of hanging


def test_ranks_read_disjoint_shards_that_cover_the_split():
    data = dataset(n=48)
    shards = [BatchLoader(data, 8, shuffle=True, seed=5, rank=r, world_size=3).indices() for r in range(3)]
    assert all(len(s) == 16 for s in shards)
    assert sorted(np.concatenate(shards).tolist()) == list(range(48))
    odd = [BatchLoader(dataset(n=50), 8, shuffle=True, rank=r, world_size=3) for r in range(3)]
    assert [o.num_samples for o in odd] == [17, 17, 17]  # padded by wrapping, as DistributedSampler


def test_loader_with_mixing_yields_soft_targets():
    loader = BatchLoader(dataset(), 10, shuffle=True, pipeline=Pipeline.from_config({"crop": 8, "cutmix": 1.0, "mixup": 0.2}))
    images, targets = next(iter(loader))
    assert images.shape == (10, 3, 8, 8) and targets.shape == (10, 5) and targets.dtype == torch.float32
    loss = F.cross_entropy(torch.zeros(10, 5), targets)  # what the trainer calls
    assert torch.isfinite(loss)
