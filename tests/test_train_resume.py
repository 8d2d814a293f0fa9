"""Resume: a run killed with SIGKILL (or stopped with Ctrl-C) and resumed ends with the weights of
an uninterrupted run, bit for bit on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from training_sample import CLASSES, write_training_sample

# The quickstart recipe, shrunk: 6 epochs of 5 batches of 16 on the 4-class sample.
ARGS = [
    "train", "quickstart", "--threads", "1",
    "--set", f"model.classes={CLASSES}", "--set", "stages[0].epochs=6", "--set", "stages[0].batch_size=16",
    "--set", "run.keep_snapshots=2",
]
TIMING_FIELDS = {"time", "images_per_s", "val_time"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_training_sample(tmp_path_factory.mktemp("resume-sample") / "sample")


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory):
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = subprocess.run([sys.executable, "-m", "tinyzoo", *ARGS, "--data", str(sample), "--out", str(out)],
                            capture_output=True, text=True, env=environment(), timeout=600)
    assert result.returncode == 0, result.stderr
    return out


def environment() -> dict:
    env = dict(os.environ)
    env.pop("TINYZOO_PROGRESS", None)
    return env


def start(sample, out, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tinyzoo", *ARGS, *extra, "--data", str(sample), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())


def resume(out, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tinyzoo", "train", "--resume", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())


def wait_for_checkpoint(process: subprocess.Popen, out: Path, *, after: str | None = None, mid_epoch: bool = False, timeout=300) -> str:
    """The name LATEST points at once it names a checkpoint other than ``after`` (mid-epoch if asked)."""
    pointer = out / "checkpoints" / "LATEST"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name = pointer.read_text().strip() if pointer.is_file() else None
        if name and name != after and (not mid_epoch or "-b" in name):
            return name
        if process.poll() is not None:
            raise AssertionError(f"the run ended before the checkpoint was written: {process.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def finish(process: subprocess.Popen, timeout=600) -> str:
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return err


def final_checkpoint(out: Path) -> Path:
    return out / "checkpoints" / (out / "checkpoints" / "LATEST").read_text().strip()


def metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


def tensor_bytes(path: Path) -> tuple[dict, bytes]:
    """A safetensors file's tensor table and data bytes (its metadata's key order is not stable)."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header.pop("__metadata__", None)
    return header, data[8 + size:]


def assert_same_run(out: Path, reference: Path) -> None:
    mine, theirs = final_checkpoint(out), final_checkpoint(reference)
    assert mine.name == theirs.name
    assert tensor_bytes(mine / "model.safetensors") == tensor_bytes(theirs / "model.safetensors")
    assert tensor_bytes(out / "best" / "model.safetensors") == tensor_bytes(reference / "best" / "model.safetensors")
    assert metrics(out) == metrics(reference)
    assert (out / "lr.csv").read_text() == (reference / "lr.csv").read_text()


def test_sigkill_twice_then_resume_equals_an_uninterrupted_run(sample, reference, tmp_path):
    out = tmp_path / "run"
    process = start(sample, out)
    first = wait_for_checkpoint(process, out)
    process.kill()  # SIGKILL: no handler runs
    process.wait()
    process = resume(out)
    wait_for_checkpoint(process, out, after=first)
    process.kill()
    process.wait()
    err = finish(resume(out))
    assert "resuming" in err
    assert_same_run(out, reference)


def test_sigkill_mid_epoch_resumes_from_the_batch(sample, reference, tmp_path):
    out = tmp_path / "run"
    process = start(sample, out, "--checkpoint-every-steps", "2")
    name = wait_for_checkpoint(process, out, mid_epoch=True)
    process.kill()
    process.wait()
    if "-b" in final_checkpoint(out).name:  # still the mid-epoch one: resume restarts at its batch
        assert name == final_checkpoint(out).name
    err = finish(resume(out))
    assert ", batch " in err or "resuming" in err
    assert_same_run(out, reference)


def test_ctrl_c_writes_a_checkpoint_and_exits_cleanly(sample, reference, tmp_path):
    out = tmp_path / "run"
    process = start(sample, out)
    wait_for_checkpoint(process, out)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    if process.returncode == 0:
        pytest.skip("the run finished before Ctrl-C arrived")
    assert process.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    assert "stopped" in err.splitlines()[-1].lower()
    finish(resume(out))
    assert_same_run(out, reference)


def test_resume_of_a_finished_run_changes_nothing(reference, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = tensor_bytes(final_checkpoint(out) / "model.safetensors")
    finish(resume(out))
    assert tensor_bytes(final_checkpoint(out) / "model.safetensors") == before
    assert metrics(out) == metrics(reference)


def test_resume_refuses_a_recipe_name(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinyzoo", "train", "quickstart", "--resume", str(tmp_path)],
                            capture_output=True, text=True, env=environment(), timeout=120)
    assert result.returncode == 2 and "--resume continues a run" in result.stderr


# -- a staged run with Kim's stem switch, crashed in-process at chosen moments ---------------------------
class Crash(Exception):
    pass


def kim_like():
    from training_sample import stage, tiny_recipe

    recipe = tiny_recipe(
        stage("head", "head", iterations=2, batch_size=4),
        stage("stem", "stem", iterations=3, batch_size=4, adapt={"stem": "small"}),
        arch="resnet18", train={"crop": 56, "flip": True},
    )
    from dataclasses import replace

    return replace(recipe, model=replace(recipe.model, stem="resize"))


def run_kim(sample, out, *, resume=False, crash_on=None, every=None):
    from tinyzoo.train import Trainer, TrainSettings

    def log(line):
        if crash_on and crash_on in line:
            raise Crash(line)

    settings = TrainSettings(data=sample, out=out, progress=False, threads=1, log=log, checkpoint_every_steps=every)
    trainer = Trainer(kim_like(), settings)
    trainer.run(resume=resume)
    return trainer


@pytest.mark.parametrize("crash_on", [
    "adapter change",  # the stem was switched in memory, the last checkpoint still has the resize stem
    "[stem 1]",  # the stem stage's epoch ended, its checkpoint not yet written (a mid-epoch one is)
])
def test_crash_around_the_stem_switch_resumes_exactly(sample, tmp_path, crash_on):
    import torch

    reference = run_kim(sample, tmp_path / "reference", every=1).model.state_dict()
    with pytest.raises(Crash):
        run_kim(sample, tmp_path / "run", crash_on=crash_on, every=1)
    resumed = run_kim(sample, tmp_path / "run", resume=True, every=1)
    assert resumed.model.tinyzoo_config["stem"] == "small"
    state = resumed.model.state_dict()
    assert state.keys() == reference.keys()
    assert all(torch.equal(state[k], reference[k]) for k in state)
    assert metrics(tmp_path / "run") == metrics(tmp_path / "reference")
