"""The registry's contents: every network of the reports, with metadata that matches the built model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tinyzoo.registry import get_registry

PRETRAINED = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16", "vgg19", "alexnet", "googlenet",
    "inception_v3", "squeezenet1_1", "densenet121", "resnext50_32x4d", "wide_resnet50_2",
]
SCRATCH = ["resnet20_zhai", "resnet38_zhai", "yu_baseline", "alexnet_yu", "googlenet_yu", "inception_v3_milani", "lenet5"]
FIELDS = {
    "name", "family", "source", "weights", "input_size", "stems", "params", "report", "results",
    "first_conv", "classifier", "num_classes", "plugin",
}
TORCHVISION_WEIGHTS = {
    "alexnet": "torchvision:AlexNet_Weights.IMAGENET1K_V1",
    "googlenet": "torchvision:GoogLeNet_Weights.IMAGENET1K_V1",
    "squeezenet1_1": "torchvision:SqueezeNet1_1_Weights.IMAGENET1K_V1",
}


def test_list_json_has_every_report_network_with_its_metadata(cli):
    result = cli("list", "--json")
    assert result.returncode == 0, result.stderr
    specs = {s["name"]: s for s in json.loads(result.stdout)}
    assert set(PRETRAINED + SCRATCH) <= set(specs)
    for name in PRETRAINED + SCRATCH:
        assert set(specs[name]) >= FIELDS, name
    for name in PRETRAINED:
        expected = TORCHVISION_WEIGHTS.get(name, f"hf-hub:timm/{name}.tv_in1k")
        assert specs[name]["weights"] == expected
        assert specs[name]["source"] == ("torchvision" if name in TORCHVISION_WEIGHTS else "timm")
    for name in SCRATCH:
        assert specs[name]["weights"] is None and specs[name]["source"] == "tinyzoo"
    kim = specs["resnet18"]["results"][0]
    assert (kim["report"], kim["val_top1"], kim["val_top5"], kim["test_top1"]) == ("kim2016", 75.01, 91.86, 68.9)


def test_info_resnet18_shows_weights_stems_and_kims_result(cli):
    out = cli("info", "resnet18").stdout
    assert "hf-hub:timm/resnet18.tv_in1k" in out
    assert "keep, small, resize" in out
    assert "75.01%" in out and "91.86%" in out


def test_unknown_name_exits_2_with_one_line_and_close_names(cli):
    result = cli("info", "resnt18")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "Error: unknown architecture 'resnt18'; did you mean: resnet18?\n"


@pytest.mark.parametrize(("name", "close"), [
    ("resnt18", ["resnet18"]),                          # one edit
    ("resnet181", ["resnet18", "resnet101", "resnet152"]),  # one edit each; the longer common prefix first
    ("resnet1", ["resnet18", "resnet101", "resnet152"]),  # names that start with it, shortest first
    ("VGG", ["vgg16", "vgg19"]),                          # case ignored
    ("inceptoin_v3", ["inception_v3"]),                # a swap is two edits; the Milani variant is far
    ("not_a_model", []),                                  # nothing within a third of its length
    ("x", []),
])
def test_suggestions_rank_by_edit_distance_and_prefix(name, close):
    from tinyzoo.errors import close_names

    assert close_names(name, get_registry().architectures) == close


def test_suggestions_for_a_timm_name_are_timm_names():
    from tinyzoo.errors import UnknownNameError

    registry = get_registry()
    with pytest.raises(UnknownNameError) as typo:
        registry.architecture("timm:resnet18x")
    assert str(typo.value) == "unknown timm model 'timm:resnet18x'; did you mean: timm:resnet18, timm:resnet18d, timm:resnet101?"
    with pytest.raises(UnknownNameError) as far:
        registry.architecture("timm:not_a_model")
    assert str(far.value) == "unknown timm model 'timm:not_a_model'; `tinyzoo list 'timm:PATTERN'` lists timm's models"
    with pytest.raises(UnknownNameError) as plain:
        registry.architecture("not_a_model")
    assert str(plain.value) == "unknown architecture 'not_a_model'; `tinyzoo list` shows the registered ones; any timm model is timm:NAME"


def test_a_pattern_that_matches_nothing_points_at_timm(cli):
    result = cli("list", "beit*")
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr == "no architecture matches 'beit*'; for timm's models: tinyzoo list 'timm:beit*'\n"
    assert cli("list", "timm:no_such_model*").stderr == "no timm model matches 'no_such_model*'\n"


def test_list_pattern_is_shell_style(cli):
    names = [s["name"] for s in json.loads(cli("list", "resnet?0*", "--json").stdout)]
    assert names == ["resnet101", "resnet20_zhai", "resnet50"]


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["info", "resnet18"], ["plugins", "--all"], ["--help"], ["info", "-h"]])
def test_metadata_commands_import_no_torch(args):
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['tinyzoo', *{args!r}]\n"
        "try:\n    runpy.run_module('tinyzoo', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules)\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.endswith("HEAVY="), result.stderr[-300:]


def test_timm_models_are_listed_on_request(cli):
    result = cli("list", "timm:resnet18*", "--json")
    specs = {s["name"]: s for s in json.loads(result.stdout)}
    assert "timm:resnet18" in specs and "timm:resnet18d" in specs
    assert specs["timm:resnet18"]["first_conv"] == "conv1" and specs["timm:resnet18"]["family"] == "resnet"
    assert cli("info", "timm:not_a_model").returncode == 2


def _module(model, path):
    return model.get_submodule(path)


@pytest.mark.parametrize("name", PRETRAINED + SCRATCH)
def test_spec_matches_the_built_network(name):
    """Schema test over every built-in spec: parameter count and layer names are real."""
    import torch
    from torch import nn

    from tinyzoo.builders import build

    spec = get_registry().architecture(name)
    with torch.device("meta"):
        model = build(spec)
    assert sum(p.numel() for p in model.parameters()) == spec.params
    conv = _module(model, spec.first_conv)
    assert isinstance(conv, nn.Conv2d) and conv.in_channels == 3
    head = _module(model, spec.classifier)
    assert isinstance(head, (nn.Linear, nn.Conv2d))
    assert (head.out_features if isinstance(head, nn.Linear) else head.out_channels) == spec.num_classes
    for path in spec.aux_classifiers:
        assert _module(model, path).out_features == spec.num_classes
    for path in spec.stem_pools:
        assert isinstance(_module(model, path), (nn.MaxPool2d, nn.AvgPool2d)), path
    assert spec.input_size in (56, 64, 224, 299)
    assert "keep" in spec.stems


def test_modern_networks_are_listed_with_timms_default_weights_and_layers():
    import torch
    from timm.models import get_pretrained_cfg

    from tinyzoo.builders import build

    modern = [s for s in get_registry().architectures.values() if s.report == "literature" or s.name in MODERN]
    assert {s.name for s in modern} == set(MODERN)
    for spec in modern:
        cfg = get_pretrained_cfg(spec.name)
        assert spec.weights == f"hf-hub:{cfg.hf_hub_id}" and spec.num_classes == cfg.num_classes
        assert (spec.mean, spec.std, spec.input_size) == (tuple(cfg.mean), tuple(cfg.std), cfg.input_size[-1])
        assert spec.first_conv == cfg.first_conv and spec.classifier == cfg.classifier
        with torch.device("meta"):
            model = build(spec)
        assert sum(p.numel() for p in model.parameters()) == spec.params
        assert "small" in spec.stems


MODERN = (
    "convnext_tiny", "efficientnet_b0", "tf_efficientnet_lite0", "swin_tiny_patch4_window7_224", "deit_small_patch16_224",
    "deit_base_patch16_224", "vit_base_patch16_224", "eva02_tiny_patch14_224", "vit_small_patch14_dinov2",
)
