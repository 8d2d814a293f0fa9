"""BatchNorm recalibration (tinyzoo.surgery.batchnorm): exact statistics on small models, and
the ``create`` / ``adapt --recalibrate-bn`` path that records it."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

import tinyzoo
from tinyzoo.errors import TinyzooError
from tinyzoo.surgery.batchnorm import Moments, batchnorms, input_moments, recalibrate


def tiny_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5), nn.BatchNorm1d(5),
    )
    with torch.no_grad():  # stored statistics far from anything the inputs give
        for bn in batchnorms(net).values():
            bn.running_mean.uniform_(-2, 2)
            bn.running_var.uniform_(0.5, 4)
    return net.eval()


def moments_at(net: nn.Module, x: torch.Tensor, where: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and population variance of each BatchNorm's input or output in an eval forward."""
    found = {}

    def hook(name):
        def record(module, args, output):
            value = args[0] if where == "input" else output
            m = Moments()
            m.add(value)
            found[name] = m.mean_var()
        return record

    handles = [bn.register_forward_hook(hook(n)) for n, bn in batchnorms(net).items()]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return found


def test_plain_recalibration_stores_exactly_the_mean_and_variance_of_each_input():
    net = tiny_net()
    x = torch.randn(16, 3, 12, 12) * 3 + 1
    layers = recalibrate(net, [x], "plain")
    assert layers == ["1", "4", "9"]
    seen = moments_at(net, x, "input")  # an eval forward with the new statistics
    for name, bn in batchnorms(net).items():
        mean, var = seen[name]
        torch.testing.assert_close(bn.running_mean.double(), mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-5, atol=1e-5)
    assert not net.training


def test_plain_recalibration_of_the_first_batchnorm_pools_every_batch_exactly():
    net = tiny_net()
    batches = [torch.randn(5, 3, 12, 12) + i for i in range(3)]
    recalibrate(net, batches, "plain")
    with torch.no_grad():
        conv_out = net[0](torch.cat(batches))
    expected = conv_out.transpose(0, 1).reshape(8, -1).double()
    torch.testing.assert_close(net[1].running_mean.double(), expected.mean(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net[1].running_var.double(), expected.var(1, unbiased=False), rtol=1e-5, atol=1e-6)


def test_relative_recalibration_gives_each_batchnorm_the_originals_output_moments():
    teacher = tiny_net()
    student = copy.deepcopy(teacher)
    student[0].stride = (1, 1)  # the "surgery": the same images seen at half the size, stride removed
    big = torch.randn(12, 3, 16, 16) * 2 + 0.5
    small = nn.functional.interpolate(big, size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
    reference = input_moments(teacher, [big])
    recalibrate(student, [small], "relative", reference)
    want, got = moments_at(teacher, big, "output"), moments_at(student, small, "output")
    for name in want:
        torch.testing.assert_close(got[name][0], want[name][0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got[name][1], want[name][1], rtol=1e-4, atol=1e-4)


def test_relative_recalibration_changes_nothing_when_the_network_and_images_are_the_originals():
    net = tiny_net()
    stored = {n: (bn.running_mean.clone(), bn.running_var.clone()) for n, bn in batchnorms(net).items()}
    x = torch.randn(10, 3, 12, 12) * 4 - 1  # far from the stored statistics: their domain must cancel
    recalibrate(net, [x], "relative", input_moments(net, [x]))
    for name, bn in batchnorms(net).items():
        torch.testing.assert_close(bn.running_mean, stored[name][0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(bn.running_var, stored[name][1], rtol=1e-4, atol=1e-4)


def test_input_moments_leaves_the_model_as_it_was():
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    input_moments(net, [torch.randn(4, 3, 12, 12)])
    assert net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_recalibration_errors_are_one_line():
    net = tiny_net()
    with pytest.raises(TinyzooError, match=r"^recalibrate_bn 'exact' is not one of: plain, relative$"):
        recalibrate(net, [torch.randn(2, 3, 8, 8)], "exact")
    with pytest.raises(TinyzooError, match=r"^recalibrate_bn 'relative' needs the original network's statistics"):
        recalibrate(net, [torch.randn(2, 3, 8, 8)], "relative")
    with pytest.raises(TinyzooError, match=r"^BatchNorm recalibration needs at least one calibration image$"):
        recalibrate(net, [], "plain")


# -- through create, save and load ------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 256, size=(90 + 10 * i, 120, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"photo{i}.png")
    return root


@pytest.mark.slow
def test_create_recalibrates_records_it_and_load_gives_it_back(photo_dir, tmp_path):
    from tinyzoo.data.photos import calibration_views

    views = calibration_views(photo_dir, count=6, view="center", native=224)
    assert views.small.shape == (6, 56, 56, 3) and views.native.shape == (6, 224, 224, 3)
    torch.manual_seed(0)
    model = tinyzoo.create("resnet18", stem="small", weights="none", recalibrate_bn="relative", calibration=views)
    config = model.tinyzoo_config
    assert config["recalibrate_bn"] == {"method": "relative", "images": 6, "size": 56, "view": "center", "source": views.source}
    assert config["kernel_resize"] == "pi"
    records = {t.key: t for t in model.tinyzoo_report.tensors}
    assert records["bn1.running_mean"].status == "resampled"
    assert records["layer4.1.bn2.running_var"].detail.startswith("BatchNorm statistics: relative recalibration on 6 images at 56 px")
    assert records["conv1.weight"].status == "resampled" and records["fc.weight"].status == "new"
    assert model.bn1.running_mean.abs().min() > 0  # random weights come with zero means and unit variances
    loaded = tinyzoo.load(tinyzoo.save(model, tmp_path / "r18"))
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert json.loads((tmp_path / "r18" / "config.json").read_text())["recalibrate_bn"]["method"] == "relative"


def test_create_refuses_recalibration_without_images_and_images_without_recalibration(photo_dir):
    from tinyzoo.data.photos import calibration_views

    with pytest.raises(TinyzooError, match=r"^recalibrate_bn='plain' needs calibration images \(--calibration-data DIR\)$"):
        tinyzoo.create("resnet18", stem="small", weights="none", recalibrate_bn="plain")
    small_only = calibration_views(photo_dir, count=3, view="full", native=None)
    with pytest.raises(TinyzooError, match=r"^calibration images were given but recalibrate_bn is not set"):
        tinyzoo.create("resnet18", stem="small", weights="none", calibration=small_only)
    with pytest.raises(TinyzooError, match=r"^recalibrate_bn='relative' needs the calibration images at resnet18's native size, 224 px$"):
        tinyzoo.create("resnet18", stem="small", weights="none", recalibrate_bn="relative", calibration=small_only)


@pytest.mark.slow
def test_adapt_command_recalibrates_on_a_photo_folder(cli, photo_dir, tmp_path):
    out = tmp_path / "r18"
    result = cli("adapt", "resnet18", "--stem", "small", "--weights", "none", "--recalibrate-bn", "plain",
                 "--calibration-data", str(photo_dir), "--calibration-images", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "BatchNorm statistics: plain recalibration on 6 images at 56 px (20 layers;" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["recalibrate_bn"]["method"] == "plain" and config["recalibrate_bn"]["images"] == 6
    missing = cli("adapt", "resnet18", "--weights", "none", "--recalibrate-bn", "plain", "--out", str(tmp_path / "x"))
    assert missing.returncode == 2
    assert "Error: --recalibrate-bn needs --calibration-data DIR" in missing.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_recipe_recalibrates_on_its_training_images(tmp_path):
    from training_sample import stage, tiny_recipe, write_training_sample

    from tinyzoo.train import Trainer, TrainSettings

    sample = write_training_sample(tmp_path / "sample")
    recipe = tiny_recipe(stage(iterations=1), model={"recalibrate_bn": "relative", "calibration_images": 12})
    trainer = Trainer(recipe, TrainSettings(data=sample, out=tmp_path / "run", progress=False, threads=1, log=lambda _: None))
    trainer.run()
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["recalibrate_bn"] == {"method": "relative", "images": 12, "size": 56, "view": "center",
                                        "source": "training split (12 images)"}
