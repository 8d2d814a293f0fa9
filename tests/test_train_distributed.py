"""Data-parallel training: two gloo processes on CPU under torchrun stay in sync."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tinyzoo.distributed import World, from_environment

from training_sample import write_training_sample

TESTS = Path(__file__).resolve().parent

RANK_SCRIPT = """
import os, sys
import torch
sys.path.insert(0, {tests!r})
from training_sample import stage, tiny_recipe
from tinyzoo.train import Trainer, TrainSettings

recipe = tiny_recipe(
    stage("head", "head", iterations=3, batch_size=8),
    stage("all", "all", epochs=1, batch_size=8, lr=0.02),
    train={{"crop": 64, "flip": False}},
)
trainer = Trainer(recipe, TrainSettings(data={data!r}, out={out!r}, progress=False, threads=1))
summary = trainer.run()
rank = os.environ["RANK"]
torch.save({{n: p.detach() for n, p in trainer.model.named_parameters()}}, os.path.join({dump!r}, f"rank{{rank}}.pt"))
print("steps", summary["steps"], "images", summary["last"]["train_images"])
"""


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_training_sample(tmp_path_factory.mktemp("ddp-sample") / "sample")


def test_two_gloo_processes_stay_in_sync(sample, tmp_path):
    script = tmp_path / "rank.py"
    dump = tmp_path / "dump"
    dump.mkdir()
    script.write_text(textwrap.dedent(RANK_SCRIPT.format(tests=str(TESTS), data=str(sample), out=str(tmp_path / "run"), dump=str(dump))))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    ranks = [torch.load(dump / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    # Each rank saw half of each batch's images: 80 images, 40 per rank, 5 batches of 8 per rank, 10 images in total per step.
    assert "steps 8 images 80" in result.stdout
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert "on cached features" in result.stderr  # the head stage ran data-parallel on cached features


def test_world_from_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_environment() == World() and World().is_main and not World().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = from_environment()
    assert (world.rank, world.world_size, world.local_rank, world.is_main, world.distributed) == (3, 4, 1, False, True)
