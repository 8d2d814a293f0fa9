"""The speedrun recipe learns: its procedure, shrunk to the 4-class sample, beats chance by far.

Its real aim (60% top-1 in 60 s on one H100) needs the dataset and a GPU: tests/gpu/check.sh
projects its wall time from measured steps; the accuracy is for a run on the real data.
"""

from __future__ import annotations

import pytest
from training_sample import CLASSES, write_training_sample

from tinyzoo.recipe import load_recipe
from tinyzoo.train import Trainer, TrainSettings


def test_the_speedrun_is_resnet18_from_scratch_with_the_small_stem():
    recipe = load_recipe("tinyzoo-speedrun")
    assert (recipe.model.arch, recipe.model.stem, recipe.model.weights, recipe.model.head_init) == ("resnet18", "small", "none", "random")
    (stage,) = recipe.stages
    assert (stage.train, stage.epochs, stage.batch_size, stage.label_smoothing) == ("all", 10, 512, 0.1)
    assert (stage.schedule.name, stage.schedule.warmup_epochs) == ("cosine", 2)
    assert (recipe.run.amp, recipe.run.channels_last, recipe.evaluation.crop) == ("auto", True, 64)


@pytest.mark.slow  # about 17 s at load 4 on the 2-core machine: ResNet-18 at 24 px, 15 steps on one thread
def test_the_speedrun_learns_the_sample_far_above_chance(tmp_path):
    sample = write_training_sample(tmp_path / "sample")
    # Its optimizer, schedule shape and augmentation, on 80 images: small batches (so a smaller rate), small crops.
    sets = [f"model.classes={CLASSES}", "stages[0].epochs=3", "stages[0].batch_size=16", "stages[0].optimizer.lr=0.05",
            "data.train.crop=24", "evaluation.crop=32", "evaluation.every_epochs=1"]
    settings = TrainSettings(data=sample, out=tmp_path / "run", progress=False, threads=1, log=lambda message: None)
    summary = Trainer(load_recipe("tinyzoo-speedrun", sets), settings).run()
    assert summary["steps"] == 15
    assert summary["last"]["train_top1"] >= 0.6 and summary["final_val_top1"] >= 0.75  # chance: 0.25
