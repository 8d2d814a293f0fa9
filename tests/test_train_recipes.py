"""Every built-in recipe trains: each of its stages runs two optimizer steps on the sample dataset.

The architecture, adapters (Kim's resize -> small stem switch included), augmentation,
optimizers, schedules, accumulation, auxiliary losses and feature caching are the recipe's
own; only the lengths and batch sizes shrink, and the weights are random (no network).
"""

from __future__ import annotations

import json

import pytest
from conftest import REPO
from training_sample import write_training_sample

from tinyzoo.recipe import load_raw, parse_recipe
from tinyzoo.train import Trainer, TrainSettings

RECIPES = sorted(p.stem for p in (REPO / "recipes").glob("*.toml"))
STEPS = 2
# The modern-family recipes run here on the smallest member of their family, same geometry and head
# (a checkpoint of DeiT-B with its AdamW state is a gigabyte).
SMALLER = {"tinyzoo-convnext-tiny": "timm:convnext_atto", "tinyzoo-deit-base": "timm:deit_tiny_patch16_224"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_training_sample(tmp_path_factory.mktemp("recipe-sample") / "sample")


def shrunk(name: str):
    """Recipe ``name`` with random weights and every stage cut to STEPS steps of 2 images (accumulating 2)."""
    data, source = load_raw(name)
    data["model"]["weights"] = "none"
    if name in SMALLER:
        data["model"]["arch"] = SMALLER[name]
        data["model"].pop("options", None)  # drop_path_rate: an option of the recipe's own spec
    if data["model"].get("head_init") == "wnid":  # the ImageNet rows need pretrained weights
        data["model"]["head_init"] = "random"
    for stage in data["stages"]:
        stage.pop("epochs", None)
        stage["iterations"] = STEPS
        stage["batch_size"] = 2
        if stage.get("effective_batch"):
            stage["effective_batch"] = 4
        schedule = stage.get("schedule", {})
        if schedule.get("name") == "step":
            schedule["step_size"] = 1
        if schedule.get("warmup_epochs"):
            schedule["warmup_epochs"] = 0.025  # one step of a 40-step epoch
    data.setdefault("run", {})["keep_snapshots"] = 0  # best/ is still written; VGG16 snapshots are 550 MB each
    return parse_recipe(data, source=f"{source} (shrunk for the test)")


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_every_stage(name, sample, tmp_path):
    recipe = shrunk(name)
    logs: list[str] = []
    # Feature caching has its own tests; here it would run Inception-v3 at 299 px over all 80 images.
    settings = TrainSettings(data=sample, out=tmp_path / "run", progress=False, threads=2, log=logs.append, feature_cache="off")
    trainer = Trainer(recipe, settings)
    summary = trainer.run()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == [s.name for s in recipe.stages]
    assert summary["steps"] == STEPS * len(recipe.stages)
    assert all(r["train_loss"] is not None and r["val_top1"] is not None for r in records)
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    changes = [s.adapt for s in recipe.stages if s.adapt]
    if changes:  # Kim: the stem switched from resize to small before the stem stage
        assert trainer.model.tinyzoo_config["stem"] == changes[-1]["stem"]
        assert any("adapter change" in line for line in logs)
