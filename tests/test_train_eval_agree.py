"""Validation and ``tinyzoo eval`` are one scoring loop with one preprocessing source: the same numbers, exactly."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from training_sample import stage, tiny_recipe

import tinyzoo
from tinyzoo.cli import cli
from tinyzoo.train import Trainer, TrainSettings

CLASSES, VAL = 6, 10


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from tinyzoo.data.sample import write_sample

    root = tmp_path_factory.mktemp("agree") / "sample"
    write_sample(root, classes=CLASSES, per_class=16, val_per_class=VAL, test_per_class=1, seed=3)
    return root


def evaluate(*args) -> dict:
    result = CliRunner().invoke(cli, ["eval", *map(str, args), "--tta", "center", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_best_val_top1_is_what_eval_reports_and_the_pixel_mean_travels(sample, tmp_path):
    pixel = {"normalize": "pixel"}  # Zhai's per-pixel mean: the statistic that must travel with best/
    recipe = tiny_recipe(stage(epochs=3, batch_size=16), model={"classes": CLASSES},
                         data={"train": {"crop": 56, "flip": True, **pixel}, "eval": pixel})
    run = tmp_path / "run"
    trainer = Trainer(recipe, TrainSettings(data=sample, out=run, progress=False, threads=1, log=lambda line: None))
    untrained = tinyzoo.create("resnet20_zhai", classes=CLASSES, weights="none", width=0.25)
    before = trainer.validate(untrained)  # works before run(): the runtime and the data exist from construction
    assert before["images"] == CLASSES * VAL and 0 <= before["top1"] <= before["top5"] <= 1
    trainer.run()

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = max(r["val_top1"] for r in records)
    first_best = next(r for r in records if r["val_top1"] == best)  # the epoch best/ was saved at
    evaluated = evaluate(run)
    assert evaluated["images"] == CLASSES * VAL
    assert evaluated["top1"] == best and evaluated["top5"] == first_best["val_top5"]

    config = json.loads((run / "best" / "config.json").read_text())
    assert config["preprocess"]["normalize"] == "pixel" and (run / "best" / "preprocess.safetensors").is_file()
    shutil.copytree(run / "best", tmp_path / "copied")
    assert evaluate(tmp_path / "copied", "--data", sample)["top1"] == best
