"""The head adapter: ImageNet rows for wnids (logits equal the original's), Kaiming init, the default rule, auxiliary heads."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

import tinyzoo
from tinyzoo.adapt import placeholder_model
from tinyzoo.builders import build
from tinyzoo.errors import TinyzooError
from tinyzoo.registry import get_registry
from tinyzoo.surgery.head import new_head_layer
from tinyzoo.weights import LoadedWeights
from tinyzoo.wordnet import imagenet_indices, imagenet_wnids, read_wnids


def some_wnids(n: int, seed: int = 0) -> list[str]:
    """``n`` ImageNet-1k wnids in a shuffled order (file order must be honoured, not sorted)."""
    return random.Random(seed).sample(list(imagenet_wnids()), n)


def pretrained(name: str, seed: int = 0) -> LoadedWeights:
    """Stand-in for downloaded ImageNet weights: the architecture's own random initialisation."""
    torch.manual_seed(seed)
    return LoadedWeights(build(get_registry().architecture(name)).state_dict(), f"test:{name}")


@pytest.mark.parametrize("name", ["resnet18", "alexnet", "squeezenet1_1", "googlenet"])
def test_wnid_head_logits_equal_the_original_rows(name, tmp_path):
    weights = pretrained(name)
    wnids = some_wnids(200)
    (tmp_path / "wnids.txt").write_text("\n".join(wnids) + "\n")
    original = tinyzoo.create(name, stem="keep", classes=1000, weights=weights)
    adapted = tinyzoo.create(name, stem="keep", wnids=tmp_path / "wnids.txt", weights=weights)
    assert adapted.tinyzoo_config["head_init"] == "wnid" and original.tinyzoo_config["head_init"] == "keep"

    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, head = original(x), adapted(x)
    rows = imagenet_indices(wnids)
    assert head.shape == (2, 200) and full.std() > 1e-3
    torch.testing.assert_close(head, full[:, rows], rtol=1e-5, atol=1e-5)
    sliced = [t.key for t in adapted.tinyzoo_report.by_status("sliced")]
    assert sliced and not adapted.tinyzoo_report.by_status("new")


def test_wnid_rows_follow_file_order_and_aux_heads_are_sliced_too():
    weights = pretrained("googlenet")
    wnids = some_wnids(10, seed=3)
    model = tinyzoo.create("googlenet", wnids=wnids, weights=weights)
    rows = imagenet_indices(wnids)
    for path in ("fc", "aux1.fc2", "aux2.fc2"):
        assert torch.equal(model.get_submodule(path).weight, weights.state_dict[f"{path}.weight"][rows])
        assert torch.equal(model.get_submodule(path).bias, weights.state_dict[f"{path}.bias"][rows])


def test_random_head_is_kaiming_normal_with_zero_bias():
    torch.manual_seed(0)
    layer = new_head_layer(nn.Linear(2048, 1000), 500)
    assert layer.weight.shape == (500, 2048)
    assert abs(layer.weight.std().item() / math.sqrt(2 / 2048) - 1) < 0.02
    assert abs(layer.weight.mean().item()) < 1e-3
    assert torch.count_nonzero(layer.bias) == 0
    conv = new_head_layer(nn.Conv2d(512, 1000, 1), 200)  # SqueezeNet's head
    assert conv.weight.shape == (200, 512, 1, 1) and abs(conv.weight.std().item() / math.sqrt(2 / 512) - 1) < 0.05


def test_classes_without_wnids_means_random_and_is_declared_new():
    model = tinyzoo.create("resnet18", classes=37, weights=pretrained("resnet18"))
    report = model.tinyzoo_report
    assert model.tinyzoo_config["head_init"] == "random" and model.fc.out_features == 37
    assert {t.key for t in report.by_status("new")} == {"fc.weight", "fc.bias"}
    assert torch.count_nonzero(model.fc.bias) == 0


def test_same_classes_without_wnids_keeps_the_head():
    weights = pretrained("resnet18")
    model = tinyzoo.create("resnet18", classes=1000, weights=weights)
    assert model.tinyzoo_config["head_init"] == "keep"
    assert torch.equal(model.fc.weight, weights.state_dict["fc.weight"])
    assert model.fc.weight.data_ptr() != weights.state_dict["fc.weight"].data_ptr()  # the caller's tensors stay theirs
    assert not model.tinyzoo_report.by_status("new")


def test_default_rule_falls_back_to_random():
    wnids = some_wnids(5)
    # weights 'none' carry no pretrained head
    assert tinyzoo.create("resnet18", wnids=wnids, weights="none").tinyzoo_config["head_init"] == "random"
    # a class outside ImageNet-1k
    model = tinyzoo.create("resnet18", wnids=wnids + ["n99999999"], weights=pretrained("resnet18"))
    assert model.tinyzoo_config["head_init"] == "random"
    assert any("n99999999" in note for note in model.tinyzoo_report.notes)


@pytest.mark.parametrize("kwargs,message", [
    ({"head_init": "wnid", "classes": 200}, "needs wnids"),
    ({"head_init": "wnid", "wnids": ["n01440764"], "weights": "none"}, "weights are 'none'"),
    ({"head_init": "wnid", "wnids": ["n01440764", "n99999999"]}, "'n99999999'"),
    ({"classes": 10, "wnids": ["n01440764", "n01443537"]}, "classes=10 but the wnids list 2"),
    ({"wnids": ["n01440764", "n01440764"]}, "appears twice"),
])
def test_head_errors_name_what_is_wrong(kwargs, message):
    kwargs.setdefault("weights", pretrained("squeezenet1_1"))
    with pytest.raises(TinyzooError, match=message):
        tinyzoo.create("squeezenet1_1", **kwargs)


def test_bad_wnids_file_names_file_and_line(tmp_path):
    path = tmp_path / "wnids.txt"
    path.write_text("n01440764\nbanana\n")
    with pytest.raises(TinyzooError, match=r"wnids.txt:2: 'banana' is not a WordNet id"):
        read_wnids(path)
    with pytest.raises(TinyzooError, match="does not exist"):
        read_wnids(tmp_path / "missing.txt")


def test_googlenet_aux_heads_adapted_by_default_follow_one_convention():
    model = tinyzoo.create("googlenet", weights="none")
    assert model.aux1.fc2.out_features == 200 and model.tinyzoo_config["aux_classifiers"] == ["aux1.fc2", "aux2.fc2"]
    model.train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 200)
    assert [a.shape for a in model.aux_logits] == [(2, 200), (2, 200)]
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 200)
    assert model.aux_logits is None


def test_aux_drop_removes_the_branches_and_reports_them():
    weights = LoadedWeights(placeholder_model(get_registry().architecture("googlenet")).state_dict(), "placeholder")
    model = tinyzoo.create("googlenet", weights=weights, aux="drop")
    assert model.aux1 is None and model.aux2 is None
    assert not any(k.startswith(("aux1.", "aux2.")) for k in model.state_dict())
    assert set(model.tinyzoo_report.dropped) == {k for k in weights.state_dict if k.startswith("aux")}
    assert model.tinyzoo_config["aux_classifiers"] == []
    model.train()
    assert isinstance(model(torch.randn(2, 3, 64, 64)), torch.Tensor)


def test_inception_v3_carries_and_adapts_its_aux_head():
    spec = get_registry().architecture("inception_v3")
    weights = LoadedWeights(placeholder_model(spec).state_dict(), "placeholder")
    assert any(k.startswith("AuxLogits.") for k in weights.state_dict)  # as the tv_in1k checkpoint does
    wnids = some_wnids(200)
    model = tinyzoo.create("inception_v3", stem="small", wnids=wnids, weights=weights)
    rows = imagenet_indices(wnids)
    assert torch.equal(model.AuxLogits.fc.weight, weights.state_dict["AuxLogits.fc.weight"][rows])
    # Training-mode forward on the meta device: main logits out, the aux logits left on the model.
    tensors = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict(keep_vars=True).items()}
    model.train()
    out = torch.func.functional_call(model, tensors, (torch.empty(2, 3, 56, 56, device="meta"),))
    assert out.shape == (2, 200) and [a.shape for a in model.aux_logits] == [(2, 200)]
    dropped = tinyzoo.create("inception_v3", stem="small", weights=weights, aux="drop")
    assert dropped.AuxLogits is None and dropped.aux_logits is False


def test_aux_option_needs_aux_classifiers():
    with pytest.raises(TinyzooError, match="has none"):
        tinyzoo.create("resnet18", weights="none", aux="drop")
