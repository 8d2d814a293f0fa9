"""DeviceLoader: BatchLoader's contract with the split held on the device, checked on CPU tensors.

On one device the resident loader must give BatchLoader's batches exactly (same rows, same
seeds, same pipeline), so a run may switch between them, and resuming mid-epoch through
``indices()`` / ``batch(number, idx)`` stays bit-identical. tests/gpu/ repeats the comparison
with the resident loader on a GPU.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tinyzoo.data import device_loader
from tinyzoo.data.augment import Pipeline
from tinyzoo.data.cache import SplitStats
from tinyzoo.data.device_loader import DeviceLoader, fits, make_loader, release, resident_split
from tinyzoo.data.loader import BatchLoader
from tinyzoo.errors import TinyzooError
from tinyzoo.train.stage import loader_from

CONFIGS = {
    "kim": {"crop": 56, "flip": True, "jitter": 0.4, "lighting": 0.1},
    "cutmix+mixup": {"crop": 56, "cutmix": 1.0, "mixup": 0.2, "mix_prob": 0.7, "channels_last": True},
    "pixel, padded": {"crop": 64, "padding": 4, "padding_mode": "reflect", "normalize": "pixel"},
    "resized": {"crop": 48, "crop_mode": "resized", "normalize": "dataset"},
    "ten": {"crop": 56, "crop_mode": "ten"},
}


def make_split(n=37, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    flat = images.reshape(-1, 3).astype(np.float64)
    stats = SplitStats.from_sums(images.astype(np.float64).sum(0), flat.T @ flat, n)
    return SimpleNamespace(images=images, labels=rng.integers(0, classes, n), wnids=[f"n{i:08d}" for i in range(classes)], stats=stats)


@pytest.fixture(autouse=True)
def _fresh_resident_cache():
    release()
    yield
    release()


def batches(loader, epochs=(0, 3)):
    out = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        out += list(loader)
    return out


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype and xa.shape == xb.shape and xa.stride() == xb.stride()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("drop_last", [False, True])
def test_resident_batches_equal_the_host_loaders(name, drop_last):
    split = make_split()
    pipeline = Pipeline.from_config(CONFIGS[name], stats=split.stats)
    for rank in (0, 1):
        kwargs = dict(shuffle=True, seed=3, pipeline=pipeline, drop_last=drop_last, rank=rank, world_size=2)
        host, resident = BatchLoader(split, 8, **kwargs), DeviceLoader(split, 8, **kwargs)
        assert (len(resident), resident.num_samples) == (len(host), host.num_samples)
        assert np.array_equal(resident.indices(), host.indices())
        assert_same(batches(resident), batches(host))


def test_unshuffled_raw_batches_are_the_rows_in_file_order():
    split = make_split(n=10)
    loader = DeviceLoader(split, 4)
    got = list(loader)
    assert [len(y) for _, y in got] == [4, 4, 2]
    assert torch.equal(torch.cat([x for x, _ in got]), torch.from_numpy(split.images))
    assert torch.equal(torch.cat([y for _, y in got]), torch.from_numpy(split.labels))


def test_a_batch_remade_alone_equals_the_iterated_one():
    """What resuming does: trainer.loader_from skips batches by rebuilding them from their number."""
    split = make_split()
    loader = DeviceLoader(split, 8, shuffle=True, seed=1, pipeline=Pipeline.from_config(CONFIGS["cutmix+mixup"]), drop_last=True)
    loader.set_epoch(5)
    whole = list(loader)
    assert_same(list(loader_from(loader, 2, len(loader))), whole[2:])
    order = loader.indices()
    assert_same([loader.batch(1, order[8:16])], [whole[1]])


def test_make_loader_chooses_by_device():
    split = make_split(n=12)
    assert type(make_loader(split, 4)) is BatchLoader
    assert type(make_loader(split, 4, device="cpu", resident=True)) is DeviceLoader
    assert type(make_loader(split, 4, device="cpu", resident=False, shuffle=True)) is BatchLoader
    assert fits(1000, 2000) and not fits(1001, 2000)


def test_splits_stay_resident_between_loaders():
    train, val, other = make_split(n=12), make_split(n=6, seed=1), make_split(n=5, seed=2)
    first = DeviceLoader(train, 4).device_images
    assert DeviceLoader(train, 2, shuffle=True).device_images.data_ptr() == first.data_ptr()
    DeviceLoader(val, 4)
    DeviceLoader(other, 4)  # a third split evicts the least recently used one (train)
    assert len(device_loader._resident) == device_loader.KEEP_RESIDENT
    assert DeviceLoader(train, 4).device_images.data_ptr() != first.data_ptr()
    images, labels = resident_split(val, torch.device("cpu"))
    assert torch.equal(images, torch.from_numpy(val.images)) and labels.dtype == torch.int64


def test_upload_in_chunks_keeps_every_row(monkeypatch):
    monkeypatch.setattr(device_loader, "UPLOAD_ROWS", 3)
    split = make_split(n=10)
    assert torch.equal(DeviceLoader(split, 4).device_images, torch.from_numpy(split.images))


def test_mixing_a_split_without_labels_fails_when_the_loader_is_made():
    split = make_split(n=8)
    split.labels = np.full(8, -1)
    pipeline = Pipeline.from_config({"cutmix": 1.0})
    for cls in (BatchLoader, DeviceLoader):
        with pytest.raises(TinyzooError, match=r"^mixup/cutmix need labels; this split has none \(test split\?\)$"):
            cls(split, 4, pipeline=pipeline, num_classes=5)
