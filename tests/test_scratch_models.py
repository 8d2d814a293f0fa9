"""The from-scratch networks of the reports: output shapes, layer paths and parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tinyzoo_plugins.models import lenet, milani, yu, zhai

BUILDERS = {
    "resnet20_zhai": zhai.resnet20_zhai,
    "resnet38_zhai": zhai.resnet38_zhai,
    "yu_baseline": yu.yu_baseline,
    "alexnet_yu": yu.alexnet_yu,
    "googlenet_yu": yu.googlenet_yu,
    "inception_v3_milani": milani.inception_v3_milani,
    "lenet5": lenet.lenet5,
}

# sum(p.numel() for p in model.parameters()) at num_classes=200.
PARAMS_AT_200 = {
    "resnet20_zhai": 3_649_032,
    "resnet38_zhai": 6_793_992,
    "yu_baseline": 13_054_984,
    "alexnet_yu": 15_303_176,
    "googlenet_yu": 2_892_136,
    "inception_v3_milani": 2_958_536,
    "lenet5": 354_636,
}

# (first conv, final classifier, auxiliary classifiers' final layers): the paths adapters use.
KEY_LAYERS = {
    "resnet20_zhai": ("stem.conv", "fc", ()),
    "resnet38_zhai": ("stem.conv", "fc", ()),
    "yu_baseline": ("features.conv", "classifier.out", ()),
    "alexnet_yu": ("features.conv1a", "classifier.out", ()),
    "googlenet_yu": ("stem.conv1.conv", "fc", ("aux1.fc2", "aux2.fc2")),
    "inception_v3_milani": ("stem.conv1.conv", "fc", ()),
    "lenet5": ("features.conv1", "classifier.fc3", ()),
}


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("num_classes", [200, 10])
def test_logits_shape_at_64_and_56(name, num_classes):
    model = BUILDERS[name](num_classes=num_classes).eval()
    with torch.no_grad():
        for size in (64, 56):
            assert model(torch.randn(2, 3, size, size)).shape == (2, num_classes), size


@pytest.mark.parametrize("name", BUILDERS)
def test_parameter_count_at_200_classes(name):
    model = BUILDERS[name](num_classes=200)
    assert sum(p.numel() for p in model.parameters()) == PARAMS_AT_200[name]


@pytest.mark.parametrize("name", BUILDERS)
def test_key_layer_paths(name):
    first_conv, classifier, aux_classifiers = KEY_LAYERS[name]
    model = BUILDERS[name](num_classes=10)
    conv = model.get_submodule(first_conv)
    assert isinstance(conv, nn.Conv2d) and conv.in_channels == 3
    assert next(m for m in model.modules() if isinstance(m, nn.Conv2d)) is conv
    for path in (classifier, *aux_classifiers):
        head = model.get_submodule(path)
        assert isinstance(head, nn.Linear) and head.out_features == 10, path


@pytest.mark.parametrize("builder", [zhai.resnet20_zhai, zhai.resnet38_zhai])
def test_zhai_less_filters_divides_every_width_by_four(builder):
    full, narrow = builder(width=1.0), builder(width=0.25)
    # Zhai, section 4.2: 16 becomes the smallest filter count.
    assert (full.stem.conv.out_channels, narrow.stem.conv.out_channels) == (64, 16)
    assert (full.stage3[0].conv2.out_channels, narrow.stage3[0].conv2.out_channels) == (256, 64)
    assert (full.fc.in_features, narrow.fc.in_features) == (1024, 256)
    assert min(m.out_channels for m in narrow.modules() if isinstance(m, nn.Conv2d)) == 16
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(narrow) < count(full) / 10


def test_googlenet_keeps_aux_logits_in_training_only():
    model = yu.googlenet_yu(num_classes=10)
    x = torch.randn(2, 3, 56, 56)
    logits = model.train()(x)
    assert logits.shape == (2, 10)
    assert len(model.aux_logits) == 2
    assert all(aux.shape == (2, 10) for aux in model.aux_logits)
    with torch.no_grad():
        model.eval()(x)
    assert model.aux_logits is None


def test_milani_dropout_option_only_changes_the_dropout_rate():
    regularized = milani.inception_v3_milani(num_classes=200, dropout=0.2)
    assert regularized.dropout.p == 0.2
    assert sum(p.numel() for p in regularized.parameters()) == PARAMS_AT_200["inception_v3_milani"]
