"""The stage loop: what trains and what stays frozen, gradient accumulation, losses, the run directory."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from training_sample import CLASSES, stage, tiny_recipe, write_training_sample

import tinyzoo.adapt as adapt
from tinyzoo.errors import TinyzooError
from tinyzoo.train import Trainer, TrainSettings
from tinyzoo.train.parts import model_parts, set_train_mode, trainable_names
from tinyzoo.train.stage import install_head_dropout, split_outputs


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_training_sample(tmp_path_factory.mktemp("train-sample") / "sample")


def small_model(arch="resnet20_zhai"):
    options = {"width": 0.25} if arch == "resnet20_zhai" else {}
    return adapt.create(arch, classes=CLASSES, weights="none", **options)


def train(recipe, sample, out, *, model=None, **settings):
    logs: list[str] = []
    trainer = Trainer(recipe, TrainSettings(data=sample, out=out, progress=False, threads=1, log=logs.append, **settings), model=model)
    summary = trainer.run()
    return trainer, summary, logs


def changed_keys(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


# -- which parts train ------------------------------------------------------------------------
def test_head_stage_changes_only_the_head_and_keeps_batchnorm_statistics(sample, tmp_path):
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = tiny_recipe(stage("head", "head", iterations=4))
    trainer, _, _ = train(recipe, sample, tmp_path / "run", model=model, feature_cache="off")
    after = trainer.model.state_dict()
    assert changed_keys(before, after) == {"fc.weight", "fc.bias"}
    running = [k for k in before if "running_" in k or "num_batches_tracked" in k]
    assert running and all(torch.equal(before[k], after[k]) for k in running)


def test_stem_stage_trains_the_first_conv_and_its_batchnorm(sample, tmp_path):
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer, _, _ = train(tiny_recipe(stage("stem", "stem", iterations=3)), sample, tmp_path / "run", model=model)
    changed = changed_keys(before, trainer.model.state_dict())
    assert changed and all(k.startswith(("stem.conv.", "stem.bn.")) for k in changed)
    assert "stem.bn.running_mean" in changed  # the trained BatchNorm is in training mode


def test_glob_patterns_select_modules(sample, tmp_path):
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer, _, _ = train(tiny_recipe(stage("s3", ["stage3.*", "fc"], iterations=3)), sample, tmp_path / "run", model=model)
    changed = changed_keys(before, trainer.model.state_dict())
    assert any(k.startswith("stage3.") for k in changed) and "fc.weight" in changed
    assert all(k.startswith(("stage3.", "fc.")) for k in changed)


def test_unknown_pattern_names_the_modules():
    model = small_model()
    with pytest.raises(TinyzooError, match="matches no parameter.*stage1"):
        trainable_names(model, ["layer4.*"])


def test_set_train_mode_puts_frozen_subtrees_in_eval():
    model = small_model()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("fc."))
    set_train_mode(model)
    assert model.training and model.fc.training
    assert not model.stem.bn.training and not model.stage2.training
    set_train_mode(model, freeze_bn=False)
    assert model.stem.bn.training


def test_model_parts_come_from_the_config():
    parts = model_parts(small_model())
    assert parts.head == ("fc",) and parts.stem == ("stem.conv", "stem.bn")
    assert model_parts(small_model("lenet5")).head == ("classifier.fc3",)


# -- gradient accumulation, dropout, auxiliary outputs -----------------------------------------
def test_gradient_accumulation_equals_one_big_batch(sample, tmp_path):
    # LeNet-5 has no BatchNorm, so 4 accumulated batches of 8 are one batch of 32.
    fixed = {"crop": 64, "flip": False}
    base = small_model("lenet5")
    results = []
    for i, st in enumerate([stage(iterations=4, batch_size=8, effective_batch=32), stage(iterations=4, batch_size=32)]):
        model = small_model("lenet5")
        model.load_state_dict(base.state_dict())
        trainer, summary, _ = train(tiny_recipe(st, arch="lenet5", train=fixed), sample, tmp_path / f"run{i}", model=model)
        assert summary["steps"] == 4
        results.append(trainer.model.state_dict())
    assert changed_keys(base.state_dict(), results[0])
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=1e-5, atol=1e-6)


def test_head_dropout_applies_in_training_only():
    model = small_model()
    install_head_dropout(model, "fc", 0.5)
    seen = []
    model.fc.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    x = torch.randn(4, 3, 56, 56)
    model.train()
    model(x)
    assert (seen[-1] == 0).float().mean() > 0.2  # the hook order: dropout first, then the recorder
    model.eval()
    model(x)
    assert (seen[-1] == 0).float().mean() < 0.2


def test_split_outputs_reads_tuples_and_aux_logits():
    main, aux1, aux2 = torch.zeros(2, 3), torch.ones(2, 3), torch.full((2, 3), 2.0)

    class Holder:
        aux_logits = (aux1, aux2)

    logits, aux = split_outputs(main, Holder())
    assert logits is main and len(aux) == 2
    logits, aux = split_outputs((main, aux1), object())
    assert logits is main and aux == [aux1]
    Holder.aux_logits = True  # torchvision's flag, not logits
    assert split_outputs(main, Holder())[1] == []


def test_auxiliary_losses_and_soft_targets_train(sample, tmp_path):
    # Yu's GoogLeNet returns auxiliary logits in training; mixup gives soft targets; both reach the loss.
    recipe = tiny_recipe(
        stage(iterations=2, batch_size=4, label_smoothing=0.1, clip_grad_norm=10.0), arch="googlenet_yu",
        train={"crop": 56, "mixup": 0.2},
    )
    _trainer, summary, _ = train(recipe, sample, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert summary["steps"] == 2 and record["train_loss"] > 0


# -- the run directory ------------------------------------------------------------------------
def test_run_directory_layout(sample, tmp_path):
    recipe = tiny_recipe(stage("a", epochs=2, batch_size=16), stage("b", iterations=3, batch_size=16, lr=0.01))
    _, summary, _logs = train(recipe, sample, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("recipe.toml", "metrics.jsonl", "lr.csv", "curves.png", "lr.png", "run.json", "best/config.json", "checkpoints/LATEST"):
        assert (run / name).exists(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == ["a", "a", "b"]
    assert records[-1]["epoch"] == pytest.approx(2.6)  # 3 steps of an epoch of 5
    for key in ("train_loss", "train_top1", "train_top5", "val_loss", "val_top1", "val_top5", "lr", "time", "images_per_s"):
        assert key in records[0]
    snapshots = json.loads((run / "snapshots" / "index.json").read_text())
    assert 1 <= len(snapshots) <= 2 and all((run / "snapshots" / s["name"] / "model.safetensors").is_file() for s in snapshots)
    assert snapshots[0]["score"] == max(r["val_top1"] for r in records)
    best = adapt.load(run / "best")
    assert best.tinyzoo_config["classes"] == CLASSES
    latest = (run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text().strip())
    assert set(load_file(str(latest / "model.safetensors"))) == set(best.state_dict())
    assert len((run / "lr.csv").read_text().splitlines()) == 1 + 2 * 5 + 3
    assert summary["steps"] == 13


def test_refuses_an_existing_run(sample, tmp_path):
    recipe = tiny_recipe(stage(iterations=1))
    train(recipe, sample, tmp_path / "run")
    with pytest.raises(TinyzooError, match="--resume"):
        train(recipe, sample, tmp_path / "run")


def test_too_few_batches_for_the_effective_batch(sample, tmp_path):
    recipe = tiny_recipe(stage(epochs=1, batch_size=16, effective_batch=128))
    with pytest.raises(TinyzooError, match="effective_batch"):
        train(recipe, sample, tmp_path / "run")


def test_latest_checkpoint_falls_back_to_the_newest_complete_one(tmp_path):
    from tinyzoo.train.rundir import RunDir

    run = RunDir(tmp_path)
    assert run.latest_checkpoint() is None
    for name in ("s00-e0003", "s00-e0003-b000120", "s00-e0004", ".s00-e0005.tmp-1"):
        (run.checkpoints / name).mkdir(parents=True)
    for name in ("s00-e0003", "s00-e0003-b000120", ".s00-e0005.tmp-1"):
        (run.checkpoints / name / "trainer.pt").write_bytes(b"x")
    (run.checkpoints / "LATEST").write_text("s00-e0003\n")
    assert run.latest_checkpoint().name == "s00-e0003"
    (run.checkpoints / "LATEST").write_text("s00-e0009\n")  # named but gone: the newest complete one instead
    assert run.latest_checkpoint().name == "s00-e0003-b000120"
