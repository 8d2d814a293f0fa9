"""Convolutionizing classifiers: exact at native input, a score map on larger input (Fleuret; OverFeat)."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn as nn
import torchvision

from tinyzoo.errors import TinyzooError
from tinyzoo.surgery.convolutionize import ConvolutionizedNet, convolutionize
from tinyzoo.surgery.kernels import resample_kernel


def images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def assert_same_logits(original: nn.Module, converted: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected, got = original(x), converted(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


def dense_scores(net: ConvolutionizedNet, x: torch.Tensor, classes: int, cells: int) -> None:
    """On a larger input: a (B, C, cells, cells) score map whose average is the (B, C) output."""
    with torch.no_grad():
        scores, pooled = net.score_map(x), net(x)
    assert scores.shape == (x.shape[0], classes, cells, cells) and torch.isfinite(scores).all()
    assert pooled.shape == (x.shape[0], classes)
    assert torch.allclose(pooled, scores.mean(dim=(2, 3)), rtol=1e-5, atol=1e-6)


def alexnet_small_stem() -> nn.Module:
    """AlexNet with 11x11/4 -> 3x3/1 (bicubic resampled), keeping the max-pool: 56 input, 6x6 at the end."""
    model = torchvision.models.alexnet().eval()
    old = model.features[0]
    small = nn.Conv2d(3, 64, 3, stride=1, padding=1)
    with torch.no_grad():
        small.weight.copy_(resample_kernel(old.weight, 3)[0])
        small.bias.copy_(old.bias)
    model.features[0] = small
    return model


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return torchvision.models.alexnet().eval()


@pytest.fixture(scope="module")
def alexnet_net(alexnet):
    return convolutionize(alexnet, "classifier", 224)


@pytest.fixture(scope="module")
def vgg16():
    torch.manual_seed(0)
    return timm.create_model("vgg16").eval()


@pytest.fixture(scope="module")
def vgg16_net(vgg16):
    return convolutionize(vgg16, "head.fc", 224)


def test_alexnet_at_224_equals_the_original(alexnet, alexnet_net):
    net = alexnet_net
    assert_same_logits(alexnet, net, images(2, 224))
    first = net.classifier[1]
    assert isinstance(first, nn.Conv2d) and first.kernel_size == (6, 6)
    assert torch.equal(first.weight, alexnet.classifier[1].weight.reshape(4096, 256, 6, 6))
    assert [net.classifier[i].kernel_size for i in (4, 6)] == [(1, 1), (1, 1)]
    assert isinstance(net.avgpool, nn.Identity)
    # Same state-dict keys; only the converted Linear weights change shape.
    assert list(net.state_dict()) == list(alexnet.state_dict())
    # The input model is left as it was.
    assert isinstance(alexnet.classifier[1], nn.Linear) and isinstance(alexnet.avgpool, nn.AdaptiveAvgPool2d)


def test_naming_the_last_linear_means_its_container(alexnet):
    net = convolutionize(alexnet, "classifier.6", 224)
    assert isinstance(net.classifier[1], nn.Conv2d) and net.classifier[1].kernel_size == (6, 6)


def test_alexnet_on_larger_input_gives_a_score_map(alexnet_net):
    net = alexnet_net
    with torch.no_grad():
        assert net.score_map(images(1, 224)).shape == (1, 1000, 1, 1)
    # 288 px: features 8x8, so a 6x6 window fits at 3x3 positions.
    dense_scores(net, images(1, 288), 1000, 3)


def test_alexnet_small_stem_at_64_gives_a_score_map():
    model = alexnet_small_stem()
    net = convolutionize(model, "classifier", 56)
    assert_same_logits(model, net, images(2, 56))
    # 64 px: features 7x7, a 6x6 window at 2x2 positions.
    dense_scores(net, images(2, 64), 1000, 2)


def test_vgg16_at_224_equals_the_original(vgg16, vgg16_net):
    net = vgg16_net
    assert_same_logits(vgg16, net, images(1, 224))
    assert isinstance(net.head.fc, nn.Conv2d) and net.head.fc.kernel_size == (1, 1)
    assert isinstance(net.head.global_pool, nn.Identity)
    assert net.pre_logits is vgg16.pre_logits and net.head_start == "pre_logits"
    assert list(net.state_dict()) == list(vgg16.state_dict())
    assert net.min_input_size == (224, 224)


def test_vgg16_small_stem_at_64_gives_a_score_map(vgg16):
    # The small stem drops the first two max-pools: 56 px in, 7x7 before fc6.
    features = vgg16.features
    pools = features[4], features[9]
    features[4], features[9] = nn.Identity(), nn.Identity()
    try:
        net = convolutionize(vgg16, "head", 56)
        assert_same_logits(vgg16, net, images(1, 56))
        with torch.no_grad():
            scores = net.score_map(images(1, 64))
        assert scores.shape == (1, 1000, 2, 2) and torch.isfinite(scores).all()
    finally:
        features[4], features[9] = pools


def test_input_too_small_is_a_one_line_error(alexnet_net, vgg16_net):
    net = alexnet_net
    assert net.min_input_size == (223, 223)
    with pytest.raises(TinyzooError) as error:
        net(images(1, 64))
    message = str(error.value)
    assert "\n" not in message and "64x64" in message and "223x223" in message and "'classifier'" in message
    # timm's ConvMlp would adaptive-pool a 2x2 map up to 7x7; the convolutionized net refuses instead.
    with pytest.raises(TinyzooError, match="7x7.*224x224"):
        vgg16_net(images(1, 64))


def toy(pool: nn.Module | None = None) -> nn.Sequential:
    """16x16 input -> 8x7x7 map -> flatten -> MLP: a Sequential classifier of the LeNet kind."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(8 * 7 * 7, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10),
    ).eval()


@pytest.mark.parametrize("classifier", ["", "7"])
def test_toy_sequential_classifier(classifier):
    model = toy()
    net = convolutionize(model, classifier, 16)
    assert_same_logits(model, net, images(4, 16))
    layer = net.get_submodule
    assert isinstance(layer("3"), nn.Identity) and layer("4").kernel_size == (7, 7) and layer("7").kernel_size == (1, 1)
    assert net.min_input_size == (16, 16)
    dense_scores(net, images(2, 24), 10, 5)
    with pytest.raises(TinyzooError, match="smallest input is 16x16"):
        net(images(1, 15))


def test_max_pooling_of_the_score_map():
    model = toy()
    net = convolutionize(model, "", 16, pool="max")
    assert_same_logits(model, net, images(2, 16))
    x = images(2, 24)
    with torch.no_grad():
        assert torch.allclose(net(x), net.score_map(x).amax(dim=(2, 3)))


def test_global_average_pool_moves_behind_an_affine_head_only():
    nested = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Sequential(nn.Dropout(), nn.Linear(4, 3))
    ).eval()
    net = convolutionize(nested, "", 8)
    assert_same_logits(nested, net, images(2, 8))
    with torch.no_grad():
        assert net.score_map(images(1, 12)).shape == (1, 3, 10, 10)
    mlp = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(TinyzooError, match="'4' \\(ReLU\\) after it is not affine"):
        convolutionize(mlp.eval(), "", 8)


def test_resnet_fc_becomes_a_class_activation_map():
    """ResNet: fc becomes a 1x1 conv on the 2x2 map; averaging its scores is the original output."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    net = convolutionize(model, "fc", 64)
    assert_same_logits(model, net, images(2, 64))
    with torch.no_grad():
        assert net.score_map(images(1, 64)).shape == (1, 1000, 2, 2)
    with pytest.raises(TinyzooError, match="only pool='avg' keeps exact"):
        convolutionize(model, "fc", 64, pool="max")


def test_training_modes_are_kept():
    model = toy().train()
    net = convolutionize(model, "", 16)
    assert model.training and net.training and net.get_submodule("4").training
    assert all(m.training for m in model.modules())


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 3, 3, padding=1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))

    def forward(self, x):
        return self.classifier(self.features(x) + x)


def test_refuses_what_it_cannot_convert_exactly():
    with pytest.raises(TinyzooError, match="does not run its children"):
        convolutionize(Residual().eval(), "classifier", 8)
    batchnorm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    with pytest.raises(TinyzooError, match="'3' \\(BatchNorm1d\\)"):
        convolutionize(batchnorm.eval(), "", 8)
    resampling = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(36, 2))
    with pytest.raises(TinyzooError, match="resamples the 6x6 map"):
        convolutionize(resampling.eval(), "", 8)
    with pytest.raises(TinyzooError, match="no submodule 'head'"):
        convolutionize(toy(), "head", 16)
    with pytest.raises(TinyzooError, match="choose one of: avg, max"):
        convolutionize(toy(), "", 16, pool="median")
