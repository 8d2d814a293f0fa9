"""`tinyzoo adapt`, save and load: three files, a report, bit-for-bit reloads, atomic writes, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import tinyzoo
from tinyzoo.adapt_report import AdaptationError, Changes, ProvenanceTracker
from tinyzoo.cli import cli as cli_group
from tinyzoo.errors import TinyzooError
from tinyzoo.plugin_loader import get_host
from tinyzoo.specs import AdapterSpec, ArchitectureSpec

FILES = {"model.safetensors", "config.json", "README.md"}


def test_tinyzoo_adapt_writes_three_files_and_prints_the_report(cli, tmp_path):
    out = tmp_path / "d"
    result = cli("adapt", "resnet18", "--stem", "small", "--weights", "none", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == FILES
    for text in ("conv1.weight", "resampled", "fc.weight", "new", "copied", "sum kept"):
        assert text in result.stdout

    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "resnet18" and config["input_size"] == 56 and config["classes"] == 200
    assert [a["name"] for a in config["adapters"]] == ["stem-small-resnet", "head"]
    assert config["weights"]["source"] == "none" and config["tinyzoo_version"] == tinyzoo.__version__
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: tinyzoo\n") and "tiny-imagenet" in card and "| conv1.weight |" in card

    model = tinyzoo.load(out)
    from safetensors.torch import load_file

    saved = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert model.tinyzoo_report.by_status("resampled")[0].key == "conv1.weight"


@pytest.mark.parametrize("name,kwargs", [
    ("resnet18", {"stem": "small", "kernel_resize": "pi"}),
    ("alexnet", {"stem": "small", "convolutionize": True}),
    ("squeezenet1_1", {"stem": "resize", "resize_mode": "bilinear"}),
    ("googlenet", {"stem": "small", "wnids": ["n01440764", "n02102040", "n01443537"]}),
    ("timm:vit_tiny_patch16_224", {"stem": "small", "kernel_resize": "pi"}),
    ("timm:tf_efficientnet_lite0", {"stem": "small-up2", "kernel_resize": "pi"}),
    ("timm:convnext_atto", {"stem": "small"}),
    ("timm:regnetx_002", {"stem": "small-up2", "convolutionize": True}),
    ("timm:deit_tiny_distilled_patch16_224", {"stem": "small", "wnids": ["n01440764", "n02102040"]}),
    ("timm:levit_128s", {"stem": "small"}),
])
def test_load_reproduces_outputs_bit_for_bit(name, kwargs, tmp_path):
    torch.manual_seed(0)
    model = tinyzoo.create(name, weights="none", **kwargs)
    tinyzoo.save(model, tmp_path / "m")
    again = tinyzoo.load(tmp_path / "m")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert again.tinyzoo_config == json.loads(json.dumps(model.tinyzoo_config))
    assert again.tinyzoo_report.to_dict() == model.tinyzoo_report.to_dict()


def test_load_needs_no_network(tmp_path, monkeypatch):
    tinyzoo.save(tinyzoo.create("squeezenet1_1", weights="none"), tmp_path / "m")
    def refuse(*args, **kwargs):
        raise AssertionError("load must not fetch weights")

    monkeypatch.setattr("tinyzoo.weights.load_weights", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert tinyzoo.load(tmp_path / "m").tinyzoo_config["architecture"] == "squeezenet1_1"


def test_save_is_atomic(tmp_path, monkeypatch):
    import safetensors.torch

    model = tinyzoo.create("squeezenet1_1", weights="none")
    real_save = safetensors.torch.save_file

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError):
        tinyzoo.save(model, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a partial one

    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    tinyzoo.save(model, tmp_path / "old")
    before = {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()}
    monkeypatch.setattr("tinyzoo.adapt.model_card", lambda config: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        tinyzoo.save(tinyzoo.create("squeezenet1_1", classes=10, weights="none"), tmp_path / "old")
    assert {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


def test_save_over_an_existing_folder_replaces_the_files(tmp_path):
    first, second = (tinyzoo.create("squeezenet1_1", classes=c, weights="none") for c in (10, 20))
    tinyzoo.save(first, tmp_path / "m")
    tinyzoo.save(second, tmp_path / "m")
    assert tinyzoo.load(tmp_path / "m").tinyzoo_config["classes"] == 20


@pytest.mark.parametrize("args,code,message", [
    (["adapt", "lenet5", "--stem", "small"], 1, "architecture 'lenet5' supports stems keep; not 'small'"),
    (["adapt", "resnet181"], 2, "unknown architecture 'resnet181'; did you mean: resnet18"),
    (["adapt", "resnet18", "--wnids", "MISSING"], 1, "wnids file MISSING does not exist"),
    (["adapt", "resnet18", "--option", "width=2"], 1, "has no option 'width'"),
    (["adapt", "resnet18", "--option", "nonsense"], 2, "expected key=value"),
])
def test_cli_errors_are_one_line(args, code, message, tmp_path):
    result = CliRunner().invoke(cli_group, args + ["--weights", "none", "--out", str(tmp_path / "d")])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d").exists()


def test_cli_json_and_bad_wnids_line(tmp_path):
    wnids = tmp_path / "wnids.txt"
    wnids.write_text("n01440764\nn0144\n")
    result = CliRunner().invoke(cli_group, ["adapt", "squeezenet1_1", "--wnids", str(wnids), "--weights", "none", "--out", str(tmp_path / "d")])
    assert result.exit_code == 1 and f"{wnids}:2: 'n0144' is not a WordNet id" in result.output
    wnids.write_text("n01440764\nn01443537\n")
    result = CliRunner().invoke(cli_group, ["adapt", "squeezenet1_1", "--wnids", str(wnids), "--weights", "none", "--out", str(tmp_path / "d"), "--json"])
    data = json.loads(result.stdout)
    assert data["config"]["wnids"] == ["n01440764", "n01443537"] and data["config"]["names"][0].startswith("tench")
    assert data["report"]["counts"]["new"]["tensors"] == 2


def test_report_refuses_silent_reinitialisation():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    tracker = ProvenanceTracker(model.state_dict())
    model[2] = nn.Linear(4, 2)  # same keys and shapes, new values, nothing declared
    tracker.apply("rogue", Changes(), model.state_dict())
    with pytest.raises(AdaptationError, match="'2.weight' changed its values"):
        tracker.check_copied(model.state_dict())

    tracker = ProvenanceTracker(model.state_dict())
    model.add_module("3", nn.Linear(2, 2))
    with pytest.raises(AdaptationError, match="created '3.weight'.*without declaring it new"):
        tracker.apply("rogue", Changes(), model.state_dict())
    tracker.apply("honest", Changes().init("3.weight", "test").init("3.bias", "test"), model.state_dict())
    assert tracker.records["3.weight"].status == "new"


def toy_net(num_classes: int = 1000):
    return nn.Sequential(nn.Conv2d(3, 8, 9, stride=4, padding=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def toy_small_stem(model, spec, *, kernel_resize="bicubic"):
    from tinyzoo.surgery.stem import replace_first_conv

    changes = Changes(input_size=56)
    replace_first_conv(model, spec.first_conv, 3, 1, 1, kernel_resize, changes)
    return model, changes


class ToyPlugin:
    @tinyzoo.hookimpl
    def register_architectures(self, register):
        register(ArchitectureSpec(name="toy-net", family="toy", source="tinyzoo", builder="test_adapt_io:toy_net",
                                  stems=("keep", "small"), first_conv="0", classifier="4"))

    @tinyzoo.hookimpl
    def register_adapters(self, register):
        register(AdapterSpec(name="stem-small-toy", role="stem-small", apply="test_adapt_io:toy_small_stem", families=("toy",)))


def test_a_plugin_brings_its_own_small_stem(tmp_path):
    get_host().register(ToyPlugin(), "toy")
    model = tinyzoo.create("toy-net", stem="small", weights="none")
    assert [a["name"] for a in model.tinyzoo_config["adapters"]] == ["stem-small-toy", "head"]
    assert model[0].kernel_size == (3, 3) and model.tinyzoo_report.by_status("resampled")[0].stats["new_size"] == [3, 3]
    tinyzoo.save(model, tmp_path / "toy")
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(tinyzoo.load(tmp_path / "toy")(x), model(x))


def toy_dropout(model, spec, *, p=0.5):
    model[3] = nn.Sequential(nn.Flatten(), nn.Dropout(p))  # no tensors: keys and values unchanged
    return model, Changes().note(f"dropout {p} before the classifier")


class StepPlugin:
    @tinyzoo.hookimpl
    def register_adapters(self, register):
        register(AdapterSpec(name="toy-dropout", apply="test_adapt_io:toy_dropout", families=("toy",), order=250))


def test_a_plugin_adds_a_step_of_its_own_after_the_head(tmp_path):
    get_host().register(ToyPlugin(), "toy")
    get_host().register(StepPlugin(), "step")
    model = tinyzoo.create("toy-net", stem="small", weights="none")
    assert [a["name"] for a in model.tinyzoo_config["adapters"]] == ["stem-small-toy", "head", "toy-dropout"]
    assert isinstance(model[3][1], nn.Dropout) and "dropout 0.5 before the classifier" in model.tinyzoo_report.notes
    tinyzoo.save(model, tmp_path / "toy")
    again = tinyzoo.load(tmp_path / "toy")  # the step is replayed from config.json
    assert isinstance(again[3][1], nn.Dropout)
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    other = tinyzoo.create("squeezenet1_1", weights="none")  # another family: the step does not run
    assert [a["name"] for a in other.tinyzoo_config["adapters"]] == ["head"]


def test_load_takes_what_eval_takes(tmp_path, monkeypatch):
    from hub_server import write_cache_entry

    model = tinyzoo.create("squeezenet1_1", classes=10, weights="none")
    best = tinyzoo.save(model, tmp_path / "run" / "best")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(tinyzoo.load(tmp_path / "run")(x), expected)  # a run directory: its best/
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        for name in ("config.json", "model.safetensors"):
            write_cache_entry(tmp_path / "hf" / "hub", "someone/squeeze-tiny", name, (best / name).read_bytes(), commit="c" * 40)
        assert torch.equal(tinyzoo.load("someone/squeeze-tiny", offline=True)(x), expected)  # a Hub id, from the cache
        assert torch.equal(tinyzoo.load("hf-hub:someone/squeeze-tiny@" + "c" * 40, offline=True)(x), expected)
    with pytest.raises(TinyzooError, match="offline, and someone/other/config.json@main is not in the Hugging Face cache"):
        tinyzoo.load("someone/other", offline=True)


def test_list_models_gives_specs_without_torch():
    code = ("import sys, tinyzoo; specs = tinyzoo.list_models('resnet1*'); "
            "print([s.name for s in specs], type(specs[0]).__name__, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['resnet101', 'resnet152', 'resnet18'] ArchitectureSpec False"


def test_restem_switches_resize_to_small():
    from tinyzoo.adapt import restem

    model = tinyzoo.create("resnet18", stem="resize", weights="none")
    fc = model.fc.weight
    restem(model, "small")
    assert not hasattr(model, "input_resize") and model.maxpool.__class__ is nn.Identity
    assert model.fc.weight is fc and model.tinyzoo_config["input_size"] == 56
    assert [a["name"] for a in model.tinyzoo_config["adapters"]] == ["stem-small-resnet", "head"]
    assert model.tinyzoo_report.by_status("resampled")[0].key == "conv1.weight"
    with torch.no_grad():
        assert model(torch.randn(1, 3, 56, 56)).shape == (1, 200)


def test_import_and_attribute_access_stay_torch_free():
    code = "import sys, tinyzoo; tinyzoo.create; tinyzoo.load; tinyzoo.save; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_load_errors_name_the_folder(tmp_path):
    with pytest.raises(TinyzooError, match="not an adapted-model folder"):
        tinyzoo.load(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TinyzooError, match="not a tinyzoo adapted-model config"):
        tinyzoo.load(tmp_path)
