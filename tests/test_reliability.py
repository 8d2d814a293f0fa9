"""The pieces behind docs/reliability.md's promises, one at a time: file modes, the sweep of temporaries,
pruning that spares foreign files, checkpoints that load with weights_only=True (or are passed over
when damaged), input sizes, JSON without NaN. The catalogue of bad inputs is tests/test_bad_inputs.py;
kills at every window of a run are tests/test_kill_windows.py."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import tinyzoo
from tinyzoo.atomic_files import (
    OLD_SUFFIX,
    replace_dir,
    staged_dir,
    sweep_temporaries,
    temp_sibling,
)
from tinyzoo.errors import TinyzooError
from tinyzoo.train.rundir import DamagedCheckpoint, RunDir, read_trainer_state


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    def set_to(value):
        os.umask(value)
    before = os.umask(0o022)
    yield set_to
    os.umask(before)


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_every_file_of_a_saved_model_follows_the_umask(umask, mask, tmp_path):
    umask(mask)
    model = tinyzoo.create("resnet20_zhai", classes=4, weights="none", width=0.25)
    tinyzoo.save(model, tmp_path / "model")
    run = RunDir(tmp_path / "run")
    run.create("name = 'x'\n", {"data": "x"})
    run.save_checkpoint("s00-e0001", model, {"version": 2})
    files = [*(tmp_path / "model").iterdir(), *(run.checkpoints / "s00-e0001").iterdir(), run.path / "run.json"]
    assert {p.name: mode(p) for p in files} == {p.name: 0o666 & ~mask for p in files}  # model.safetensors was 0600
    assert mode(run.path) == mode(run.checkpoints) == 0o777 & ~mask


# -- temporaries ----------------------------------------------------------------------------------------------
def test_the_sweep_removes_a_dead_process_temporaries_only(tmp_path):
    pid = dead_pid()
    dead = [tmp_path / f".train.npy.tmp-{pid}-1.npy", tmp_path / f".LATEST.tmp-{pid}-2"]
    for path in dead:
        path.write_text("x")
    (tmp_path / f".best.tmp-{pid}-3").mkdir()
    alive = tmp_path / f".LATEST.tmp-{os.getppid()}-4"  # a live process (pytest's parent)
    alive.write_text("x")
    mine = tmp_path / "notes.tmp-1-2.txt"  # not hidden: not a name tinyzoo makes
    mine.write_text("x")
    removed = sweep_temporaries(tmp_path)
    assert sorted(removed) == sorted(dead + [tmp_path / f".best.tmp-{pid}-3"])
    assert alive.exists() and mine.exists()


def test_the_sweep_puts_back_a_folder_caught_between_two_renames(tmp_path):
    """replace_dir moves the old folder aside, then renames the new one in: a kill in between
    leaves neither under the name; the sweep puts the old one back (and drops the new half)."""
    pid = dead_pid()
    old = tmp_path / f".best.tmp-{pid}-1{OLD_SUFFIX}"
    old.mkdir()
    (old / "model.safetensors").write_text("previous best")
    (tmp_path / f".best.tmp-{pid}-2").mkdir()  # the staged new folder
    sweep_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    assert (tmp_path / "best" / "model.safetensors").read_text() == "previous best"


def test_the_sweep_drops_the_old_folder_once_the_new_one_is_in_place(tmp_path):
    pid = dead_pid()
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "config.json").write_text("new")
    old = tmp_path / f".best.tmp-{pid}-1{OLD_SUFFIX}"
    old.mkdir()
    sweep_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"] and (tmp_path / "best" / "config.json").read_text() == "new"


def test_a_sweep_for_one_target_leaves_the_others(tmp_path):
    pid = dead_pid()
    (tmp_path / f".run.tmp-{pid}-1").mkdir()
    (tmp_path / f".other.tmp-{pid}-1").mkdir()
    sweep_temporaries(tmp_path, target="run")
    assert [p.name for p in tmp_path.iterdir()] == [f".other.tmp-{pid}-1"]


def test_staged_and_replaced_folders_leave_nothing_beside_them(tmp_path):
    with staged_dir(tmp_path / "a") as staging:
        (staging / "f").write_text("1")
    with staged_dir(tmp_path / "a") as staging:
        (staging / "f").write_text("2")
    source = tmp_path / "source"
    source.mkdir()
    replace_dir(source, tmp_path / "a")
    assert [p.name for p in tmp_path.iterdir()] == ["a"] and not any((tmp_path / "a").iterdir())
    assert temp_sibling(tmp_path / "a").name.startswith(".a.tmp-")


# -- the run directory never deletes what it did not write -------------------------------------------------------
def test_a_run_an_earlier_tinyzoo_left_before_run_json_is_started_over(tmp_path):
    """Before the first files were made together, a kill between recipe.toml and run.json left a
    folder that --resume refused (no run.json) and --out refused too (it held a run)."""
    run = RunDir(tmp_path / "run")
    run.checkpoints.mkdir(parents=True)
    run.recipe_path.write_text("name = 'old'\n")
    run.metrics_path.write_text("")
    run.create("name = 'new'\n", {"data": "x"})
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoints", "metrics.jsonl", "recipe.toml", "run.json"]
    assert run.recipe_path.read_text() == "name = 'new'\n" and [p.name for p in tmp_path.iterdir()] == ["run"]
    (run.path / "run.json").unlink()
    (run.path / "notes.txt").write_text("mine")  # no longer only tinyzoo's first files: refused
    with pytest.raises(TinyzooError, match="holds files that are not a tinyzoo run"):
        run.create("name = 'new'\n", {"data": "x"})



def test_pruning_and_restoring_spare_what_tinyzoo_did_not_write(tmp_path):
    model = tinyzoo.create("resnet20_zhai", classes=4, weights="none", width=0.25)
    run = RunDir(tmp_path / "run")
    run.create("name = 'x'\n", {"data": "x"})
    (run.checkpoints / "my-notes").mkdir()  # not a checkpoint name: never pruned
    (run.checkpoints / "my-notes" / "trainer.pt").write_text("mine")
    for epoch in (1, 2, 3):
        run.save_checkpoint(f"s00-e000{epoch}", model, {"version": 2})
        time.sleep(0.01)  # distinct mtimes
        if epoch == 1:
            (run.checkpoints / "s00-e0001" / "analysis.txt").write_text("mine")  # a file of mine in a checkpoint
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["LATEST", "my-notes", "s00-e0001", "s00-e0002", "s00-e0003"]
    assert [p.name for p in (run.checkpoints / "s00-e0001").iterdir()] == ["analysis.txt"]  # tinyzoo's files gone, mine kept
    index = run.add_snapshot(model, 0.5, "s00-e0001", keep=1, index=[])
    (run.snapshots / "photos").mkdir()  # not a snapshot name
    (run.snapshots / index[0]["name"] / "eval.json").write_text("mine")
    index = run.add_snapshot(model, 0.6, "s00-e0002", keep=1, index=index)
    run.restore_snapshots(index)
    assert sorted(p.name for p in run.snapshots.iterdir()) == ["index.json", "photos", "s00-e0001-acc0.5000", "s00-e0002-acc0.6000"]
    assert [p.name for p in (run.snapshots / "s00-e0001-acc0.5000").iterdir()] == ["eval.json"]


def test_best_holding_a_file_of_mine_is_updated_around_it(tmp_path):
    first = tinyzoo.create("resnet20_zhai", classes=4, weights="none", width=0.25)
    second = tinyzoo.create("resnet20_zhai", classes=4, weights="none", width=0.25)
    run = RunDir(tmp_path / "run")
    run.save_best(first)
    (run.best / "notes.md").write_text("mine")
    run.save_best(second)
    assert (run.best / "notes.md").read_text() == "mine"
    loaded = tinyzoo.load(run.best)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), second.state_dict().values()))


# -- trainer.pt ------------------------------------------------------------------------------------------------------
def test_rng_states_survive_weights_only_exactly(tmp_path):
    from tinyzoo.train.state import plain_rng, restore_rng

    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    np.random.normal()  # numpy now holds a cached Gaussian
    torch.save({"rng": [plain_rng()]}, tmp_path / "trainer.pt")
    expected = (torch.rand(3), np.random.normal(size=3), np.random.normal(), random.random())
    restore_rng(read_trainer_state(tmp_path / "trainer.pt")["rng"], 0)
    again = (torch.rand(3), np.random.normal(size=3), np.random.normal(), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2:] == again[2:]


@pytest.mark.parametrize("damage", ["truncated", "empty", "zip-garbage"])
def test_a_damaged_checkpoint_is_passed_over_for_the_one_before(tmp_path, damage):
    model = tinyzoo.create("resnet20_zhai", classes=4, weights="none", width=0.25)
    run = RunDir(tmp_path / "run")
    run.create("name = 'x'\n", {"data": "x"})
    run.save_checkpoint("s00-e0001", model, {"version": 2, "epoch": 1})
    run.save_checkpoint("s00-e0002", model, {"version": 2, "epoch": 2})
    newest = run.checkpoints / "s00-e0002" / "trainer.pt"
    data = newest.read_bytes()
    newest.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "zip-garbage": b"PK\x03\x04" + bytes(200)}[damage])
    with pytest.raises(DamagedCheckpoint):
        read_trainer_state(newest)
    logs = []
    path, _, state = run.load_latest(logs.append)
    assert path.name == "s00-e0001" and state["epoch"] == 1
    assert len(logs) == 1 and logs[0].startswith(f"checkpoint s00-e0002 is damaged: {newest} cannot be read (")
    assert logs[0].endswith("; resuming from s00-e0001, the one before it")


def test_a_damaged_model_file_in_a_checkpoint_is_passed_over_too(tmp_path):
    model = tinyzoo.create("resnet20_zhai", classes=4, weights="none", width=0.25)
    run = RunDir(tmp_path / "run")
    run.save_checkpoint("s00-e0001", model, {"version": 2})
    run.save_checkpoint("s00-e0002", model, {"version": 2})
    weights = run.checkpoints / "s00-e0002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    logs = []
    assert run.load_latest(logs.append)[0].name == "s00-e0001" and "is not a valid safetensors file" in logs[0]


# -- input sizes -------------------------------------------------------------------------------------------------------
def test_the_input_size_probe_draws_no_random_numbers_and_changes_nothing():
    from tinyzoo.input_size import check_input_size, fits

    model = tinyzoo.create("squeezenet1_1", weights="none", classes=4)  # dropout in its classifier
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert fits(model, 56) and not fits(model, 16)  # one blank image, evaluation mode
    assert fits(model, 56, training=True) and not fits(model, 16, training=True)  # the meta device, training mode
    check_input_size(model, 56, what="crops", training=True)
    assert torch.equal(torch.get_rng_state(), state) and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# -- JSON ----------------------------------------------------------------------------------------------------------------
def test_json_output_is_always_json(capsys):
    from tinyzoo.console import print_json

    print_json({"loss": float("nan"), "rows": [1.5, float("inf"), -float("inf")], "ok": 0.25})
    out, err = capsys.readouterr()

    def refuse(name):
        raise AssertionError(f"{name} is not JSON")

    assert json.loads(out, parse_constant=refuse) == {"loss": None, "rows": [1.5, None, None], "ok": 0.25}
    assert err == "tinyzoo: warning: 3 value(s) were NaN or infinite, which JSON cannot hold; they are printed as null\n"
