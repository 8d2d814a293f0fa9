"""`tinyzoo train` on the command line: a quick run, its summary, and one-line errors."""

from __future__ import annotations

import json

import pytest
from training_sample import CLASSES, write_training_sample

from tinyzoo.recipe import load_recipe


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_training_sample(tmp_path_factory.mktemp("cli-sample") / "sample")


def test_quick_run_prints_a_json_summary(cli, sample, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "quickstart", "--data", str(sample), "--out", str(out), "--epochs-scale", "0.2",
                 "--set", f"model.classes={CLASSES}", "--set", "stages[0].batch_size=16", "--threads", "1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["run"] == str(out) and summary["epochs"] == 2 and summary["steps"] == 10
    assert 0 <= summary["final_val_top1"] <= 1
    # recipe.toml is what ran: the --set values and the scaled length.
    ran = load_recipe(out / "recipe.toml")
    assert ran.stages[0].epochs == pytest.approx(2.0) and ran.stages[0].batch_size == 16 and ran.model.classes == CLASSES
    assert json.loads((out / "run.json").read_text())["threads"] == 1
    assert "stage 1/1 'scratch'" in result.stderr and "epoch 2.00" in result.stderr


def test_unknown_recipe_is_a_one_line_error(cli, sample):
    result = cli("train", "quickstrat", "--data", str(sample))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["Error: unknown recipe 'quickstrat'; did you mean: quickstart?"]


def test_without_data_the_sample_dataset_is_written_once_and_used(cli, tmp_path):
    """The README's first command: `tinyzoo train quickstart` needs no dataset at hand."""
    import os

    sample = tmp_path / "cache" / "sample"
    env = {"TINYZOO_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "run"
    result = cli("train", "quickstart", "--out", str(out), "--epochs-scale", "0.1", "--threads", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert f"no --data: training on the generated sample dataset in {sample}" in result.stderr
    assert len((sample / "wnids.txt").read_text().split()) == 10
    assert json.loads((out / "run.json").read_text())["data"] == str(sample.resolve())
    assert [p.name for p in sample.parent.iterdir() if p.name.startswith(".sample-")] == []  # no leftovers
    assert oct(os.stat(out / "best").st_mode & 0o777) != "0o700"

    # eval of a run directory reads the dataset the run trained on.
    evaluated = cli("eval", str(out), "--json", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    in_run = json.loads(evaluated.stdout)
    assert in_run["images"] == 100
    # another process, scoring as validation did: the best val_top1 of the run, exactly
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert in_run["top1"] == max(r["val_top1"] for r in records)

    # best/ copied out of the run keeps the recipe's crop and normalisation in its config.json.
    import shutil

    shutil.copytree(out / "best", tmp_path / "copied")
    config = json.loads((tmp_path / "copied" / "config.json").read_text())
    assert config["preprocess"]["crop"] == 56 and config["preprocess"]["normalize"] == "imagenet"
    copied = cli("eval", str(tmp_path / "copied"), "--data", str(sample), "--json", env=env)
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout)["top1"] == in_run["top1"]


def test_eval_of_a_lone_model_needs_data(cli, tmp_path):
    made = cli("adapt", "lenet5", "--classes", "10", "--out", str(tmp_path / "m"))
    assert made.returncode == 0, made.stderr
    result = cli("eval", str(tmp_path / "m"))
    assert result.returncode == 2 and "give --data DIR" in result.stderr and "Traceback" not in result.stderr


def test_bad_override_names_the_field(cli, sample, tmp_path):
    result = cli("train", "quickstart", "--data", str(sample), "--out", str(tmp_path / "r"), "--set", "stages[0].optimizer.lr=-1")
    assert result.returncode == 1 and "stages[0].optimizer.lr" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_resume_needs_a_run_directory(cli, tmp_path):
    result = cli("train", "--resume", str(tmp_path))
    assert result.returncode == 1 and "not a run directory" in result.stderr


def test_help_lists_the_options(cli):
    result = cli("train", "--help")
    assert result.returncode == 0
    for option in ("--data", "--out", "--set", "--resume", "--device", "--epochs-scale", "--threads"):
        assert option in result.stdout
