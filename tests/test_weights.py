"""Weight sources, safe reading, fitting checks and the offline cache (no network: files only)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from tinyzoo import hub
from tinyzoo.errors import TinyzooError
from tinyzoo.hub import verify_safetensors
from tinyzoo.registry import get_registry
from tinyzoo.weights import LoadedWeights, WeightsSource, apply_timm_filter, build_with_weights, check_state_dict, load_weights


def spec(name):
    return get_registry().architecture(name)


def assert_one_line(exc_info, *fragments):
    message = str(exc_info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def has_adapt_command():
    try:
        from tinyzoo.cli import cli
    except ImportError:  # the command modules are still being written
        return False
    return "adapt" in cli.commands


# -- the source syntax ------------------------------------------------------------------------
@pytest.mark.parametrize("text, kind, canonical", [
    ("hf-hub:timm/resnet18.tv_in1k", "hf-hub", "hf-hub:timm/resnet18.tv_in1k"),
    ("hf-hub:timm/resnet18.tv_in1k@v1.0", "hf-hub", "hf-hub:timm/resnet18.tv_in1k@v1.0"),
    ("hf_hub:timm/resnet18.tv_in1k@" + "a" * 40, "hf-hub", "hf-hub:timm/resnet18.tv_in1k@" + "a" * 40),
    ("torchvision:AlexNet_Weights.IMAGENET1K_V1", "torchvision", "torchvision:AlexNet_Weights.IMAGENET1K_V1"),
    ("none", "none", "none"),
    (" None ", "none", "none"),
])
def test_parse_accepts_each_form(text, kind, canonical):
    src = WeightsSource.parse(text)
    assert (src.kind, str(src)) == (kind, canonical)
    assert WeightsSource.parse(str(src)) == src


def test_parse_paths(tmp_path):
    assert WeightsSource.parse(str(tmp_path)).kind == "file"
    src = WeightsSource.parse(str(tmp_path / "w.safetensors"))  # existence is checked when loading
    assert src.kind == "file" and str(src) == str(tmp_path / "w.safetensors")


@pytest.mark.parametrize("text, fragment", [
    ("hf-hub:resnet18", "hf-hub:ORG/REPO"),
    ("hf-hub:timm/resnet18@", "hf-hub:ORG/REPO@REVISION"),
    ("torchvision:alexnet", "torchvision:WEIGHTS_NAME"),
    ("", "expected hf-hub:ORG/REPO"),
    ("no/such/file", "no such file or directory"),
])
def test_parse_rejects_with_the_accepted_forms(text, fragment):
    with pytest.raises(TinyzooError) as exc_info:
        WeightsSource.parse(text)
    assert_one_line(exc_info, fragment)


def test_none_means_the_spec_default():
    assert str(WeightsSource.resolve(None, spec("resnet18"))) == "hf-hub:timm/resnet18.tv_in1k"
    assert str(WeightsSource.resolve(None, spec("alexnet"))) == "torchvision:AlexNet_Weights.IMAGENET1K_V1"
    scratch = next(s for s in get_registry().architectures.values() if s.weights is None)
    assert WeightsSource.resolve(None, scratch).kind == "none"
    loaded = load_weights(None, scratch)
    assert loaded.state_dict is None and loaded.source == "none"
    assert loaded.describe() == "none (random initialisation)"


# -- the Hugging Face cache, offline ------------------------------------------------------------
def test_default_weights_come_from_the_cache_exactly(hub_cache):
    loaded = load_weights(None, spec("resnet18"), offline=True)
    assert_same_tensors(loaded.state_dict, hub_cache.tensors)
    assert loaded.source == "hf-hub:timm/resnet18.tv_in1k"
    assert loaded.revision == hub_cache.commit
    assert loaded.sha256 == hashlib.sha256(hub_cache.data).hexdigest()
    assert loaded.to_config() == {"source": loaded.source, "revision": hub_cache.commit, "sha256": loaded.sha256}
    model = build_with_weights(spec("resnet18"), {}, loaded)  # fits the architecture exactly, before any surgery
    assert torch.equal(model.conv1.weight, hub_cache.tensors["conv1.weight"])


@pytest.mark.parametrize("variable", ["TINYZOO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_without_the_file_fails_at_once_saying_how_to_proceed(hub_cache, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(None, spec("resnet50"))
    assert_one_line(exc_info, "timm/resnet50.tv_in1k", "offline", "tinyzoo weights fetch resnet50", "--weights PATH", "--weights none")


def test_a_pinned_revision_is_honoured_offline(hub_cache):
    other = {k: v + 1 if v.is_floating_point() else v for k, v in hub_cache.tensors.items()}
    from safetensors.torch import save

    older = hub_cache.add(hub_cache.repo_id, save(other), commit="b" * 40, ref=None).parent.name
    pinned = load_weights(f"hf-hub:{hub_cache.repo_id}@{older}", spec("resnet18"), offline=True)
    assert pinned.revision == "b" * 40 and pinned.source.endswith("@" + "b" * 40)
    assert torch.equal(pinned.state_dict["fc.bias"], hub_cache.tensors["fc.bias"] + 1)
    main = load_weights(f"hf-hub:{hub_cache.repo_id}@main", spec("resnet18"), offline=True)
    assert main.revision == hub_cache.commit


def test_a_damaged_cached_file_is_refused_and_removed(hub_cache):
    blob = hub.cached_blob(hub_cache.path)
    damaged = bytearray(hub_cache.data)
    damaged[-100] ^= 0xFF
    blob.write_bytes(bytes(damaged))
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(None, spec("resnet18"), offline=True)
    assert_one_line(exc_info, "damaged", "timm/resnet18.tv_in1k")
    assert not blob.exists() and not hub_cache.path.exists()


def test_a_truncated_cached_file_is_refused_and_removed(hub_cache):
    path = hub_cache.add("me/truncated", hub_cache.data[:4096])  # consistent checksum, broken content
    with pytest.raises(TinyzooError) as exc_info:
        load_weights("hf-hub:me/truncated", spec("resnet18"), offline=True)
    assert_one_line(exc_info, "not a valid safetensors file", "removed from the cache")
    assert not path.exists() and not list((hub_cache.cache_dir / "models--me--truncated" / "blobs").iterdir())


# -- local files ---------------------------------------------------------------------------
def small_state_dict():
    return {"layer.weight": torch.arange(6.0).reshape(2, 3), "layer.bias": torch.zeros(2)}


def test_local_safetensors_file_and_adapted_model_directory(tmp_path):
    save_file(small_state_dict(), tmp_path / "model.safetensors")
    for source in (tmp_path / "model.safetensors", tmp_path):
        loaded = load_weights(str(source))
        assert_same_tensors(loaded.state_dict, small_state_dict())
        assert loaded.sha256 == hub.file_sha256(tmp_path / "model.safetensors") and loaded.revision is None
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(str(tmp_path / "missing.safetensors"))
    assert_one_line(exc_info, "missing.safetensors", "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(str(empty))
    assert_one_line(exc_info, "has no model.safetensors")


@pytest.mark.parametrize("cut", [7, 100, -10])
def test_truncated_local_safetensors_is_one_line_error(tmp_path, cut):
    save_file(small_state_dict(), tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[:cut])
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(str(tmp_path / "w.safetensors"))
    assert_one_line(exc_info, "w.safetensors", "not a valid safetensors file")
    with pytest.raises(TinyzooError) as exc_info:  # the torch-free check used by fetch and push
        verify_safetensors(tmp_path / "w.safetensors")
    assert_one_line(exc_info, "w.safetensors", "not a valid safetensors file")


def test_verify_safetensors_accepts_a_whole_file(tmp_path):
    save_file(small_state_dict(), tmp_path / "w.safetensors", metadata={"format": "pt"})
    assert verify_safetensors(tmp_path / "w.safetensors") is None


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_is_read_only_with_weights_only(tmp_path):
    torch.save(small_state_dict(), tmp_path / "plain.pth")
    assert_same_tensors(load_weights(str(tmp_path / "plain.pth")).state_dict, small_state_dict())
    torch.save({"state_dict": small_state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    assert_same_tensors(load_weights(str(tmp_path / "wrapped.pt")).state_dict, small_state_dict())
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"weight": RunsCode()}, f, protocol=2)
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(str(tmp_path / "evil.pth"))
    assert_one_line(exc_info, "refused", "evil.pth", "run code")


# -- torchvision weights through torch.hub's cache --------------------------------------------
def test_torchvision_weights_come_from_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(TinyzooError) as exc_info:
        load_weights(None, spec("alexnet"), offline=True)
    assert_one_line(exc_info, "alexnet-owt-7be5be79.pth", "tinyzoo weights fetch alexnet", "--weights none")
    folder = hub.torch_checkpoints_dir()
    folder.mkdir(parents=True)
    torch.save(small_state_dict(), folder / "alexnet-owt-7be5be79.pth")
    loaded = load_weights(None, spec("alexnet"), offline=True)
    assert loaded.source == "torchvision:AlexNet_Weights.IMAGENET1K_V1" and loaded.revision is None
    assert_same_tensors(loaded.state_dict, small_state_dict())


def test_torch_hub_download_checks_the_hash_and_keeps_nothing_on_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.save(small_state_dict(), tmp_path / "payload.pth")
    digest = hub.file_sha256(tmp_path / "payload.pth")
    good, bad = tmp_path / f"net-{digest[:8]}.pth", tmp_path / "net-00000000.pth"
    for f in (good, bad):
        f.write_bytes((tmp_path / "payload.pth").read_bytes())
    found = hub.download_checkpoint(good.as_uri(), progress=False)
    assert found.downloaded and found.sha256 == digest and found.path.parent == hub.torch_checkpoints_dir()
    assert not hub.download_checkpoint(good.as_uri(), progress=False).downloaded
    with pytest.raises(TinyzooError) as exc_info:
        hub.download_checkpoint(bad.as_uri(), progress=False)
    assert_one_line(exc_info, "checksum")
    assert sorted(p.name for p in hub.torch_checkpoints_dir().iterdir()) == [good.name]


# -- fitting the architecture ------------------------------------------------------------------
def meta_model(name):
    from tinyzoo.builders import build

    with torch.device("meta"):
        return build(spec(name))


def test_check_state_dict_lists_the_first_mismatches_in_one_line():
    model = meta_model("resnet18")
    fitting = {k: torch.empty(v.shape, device="meta") for k, v in model.state_dict().items()}
    assert check_state_dict(model, fitting, "x") is None
    del fitting["layer1.0.bn1.num_batches_tracked"]  # torch fills it in
    assert check_state_dict(model, fitting, "x") is None

    wrong = dict(fitting)
    wrong["conv1.weight"] = torch.empty(64, 3, 3, 3)
    del wrong["fc.weight"], wrong["fc.bias"]
    for i in range(5):
        wrong[f"extra.{i}"] = torch.empty(1)
    with pytest.raises(TinyzooError) as exc_info:
        check_state_dict(model, wrong, "hf-hub:me/other")
    assert_one_line(
        exc_info, "hf-hub:me/other", "2 missing (fc.weight, fc.bias)", "5 unexpected (extra.0, extra.1, extra.2, ... 2 more)",
        "conv1.weight [64, 3, 3, 3] vs [64, 3, 7, 7]",
    )


def test_timm_converts_a_checkpoint_in_another_layout_through_its_own_loader():
    model = meta_model("densenet121")
    timm_layout = {k: torch.randn(v.shape) if v.is_floating_point() else torch.zeros(v.shape, dtype=v.dtype)
                   for k, v in model.state_dict().items()}
    assert apply_timm_filter(timm_layout, spec("densenet121")) is timm_layout  # it fits: nothing to do
    # torchvision's old DenseNet layout ("denselayer1.norm.1.weight", no num_batches_tracked): timm's filter renames it.
    old = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
           for k, v in timm_layout.items() if not k.endswith("num_batches_tracked")}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    converted = apply_timm_filter(old, spec("densenet121"))
    assert list(converted) == list(timm_layout)
    assert all(torch.equal(converted[k], v) for k, v in timm_layout.items())
    foreign = {"conv1.weight": torch.zeros(1)}  # nothing timm can load: unchanged, for check_state_dict to name
    assert apply_timm_filter(foreign, spec("resnet18")) is foreign


def test_describe_names_source_commit_and_checksum():
    loaded = LoadedWeights({}, "hf-hub:timm/resnet18.tv_in1k", "c" * 40, "d" * 64)
    assert loaded.describe() == f"hf-hub:timm/resnet18.tv_in1k, commit {'c' * 12}, sha256 {'d' * 12}"


# -- the CLI, offline, with the adapters (issue 7's acceptance test) ------------------------------
@pytest.mark.skipif(not has_adapt_command(), reason="`tinyzoo adapt` (the adapters issue) not written yet")
def test_adapt_offline_gives_exactly_the_cached_tensors_ready_to_push(hub_cache, cli, tmp_path):
    out = tmp_path / "d"
    result = cli("adapt", "resnet18", "--stem", "keep", "--classes", "1000", "--out", str(out), env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert_same_tensors(load_file(out / "model.safetensors"), hub_cache.tensors)
    config = json.loads((out / "config.json").read_text())
    assert config["weights"] == {"source": "hf-hub:timm/resnet18.tv_in1k", "revision": hub_cache.commit,
                                 "sha256": hashlib.sha256(hub_cache.data).hexdigest()}
    dry = cli("push", str(out), "me/resnet18-tiny", "--dry-run")  # its model card is what push needs
    assert dry.returncode == 0, dry.stderr
    assert "base_model: timm/resnet18.tv_in1k" in dry.stdout


def test_file_digest_is_remembered_only_for_files_not_just_written(tmp_path):
    import hashlib
    import os

    from tinyzoo.hub import digests

    path = tmp_path / "w.bin"
    path.write_bytes(b"a" * 1000)
    assert digests.file_sha256(path) == hashlib.sha256(b"a" * 1000).hexdigest()
    path.write_bytes(b"b" * 1000)  # same size, likely the same coarse mtime: must not be served from memory
    assert digests.file_sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest()
    old = path.stat().st_mtime_ns - 10_000_000_000
    os.utime(path, ns=(old, old))
    first = digests.file_sha256(path)
    key = (os.path.realpath(path), path.stat().st_ino, 1000, old)
    assert digests._DIGESTS[key] == first == hashlib.sha256(b"b" * 1000).hexdigest()
