"""Data-parallel training: two gloo processes on CPU under torchrun stay in sync."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from training_sample import write_training_sample

from tinyzoo.distributed import World, from_environment

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


@pytest.mark.slow  # about 25 s at load 4 on 2 cores: two "machines" on this one, rendezvous included
def test_two_nodes_share_the_run_directory_and_build_the_cache_once(sample, tmp_path):
    """Multi-node torchrun as docs/training.md describes it: c10d rendezvous at one node's address, one
    process per node here, the dataset, cache and run directory on a file system both nodes see."""
    import socket

    script = tmp_path / "rank.py"
    dump = tmp_path / "dump"
    dump.mkdir()
    script.write_text(textwrap.dedent(RANK_SCRIPT.format(tests=str(TESTS), data=str(sample), out=str(tmp_path / "run"), dump=str(dump))))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, TINYZOO_PROGRESS="1", TINYZOO_CACHE_DIR=str(tmp_path / "shared-cache"))
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                               "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "two-nodes", str(script)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    for node, (out, err) in zip(nodes, outputs):
        assert node.returncode == 0, out[-2000:] + err[-4000:]
    ranks = [torch.load(dump / f"rank{r}.pt") for r in (0, 1)]
    assert all(torch.equal(ranks[0][name], ranks[1][name]) for name in ranks[0])
    assert sum("decoding train" in err for _, err in outputs) == 1  # one node decoded; the other waited for its cache
    assert sum("steps 8 images 80" in out for out, _ in outputs) == 2  # each node saw its half of every batch
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file() and len(list((tmp_path / "run").glob("metrics.jsonl"))) == 1


def test_world_from_environment(monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_environment() == World() and World().is_main and not World().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = from_environment()
    assert (world.rank, world.world_size, world.local_rank, world.is_main, world.distributed) == (3, 4, 1, False, True)
    # torchrun with one process: still a process group, so one GPU runs every collective of many
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not from_environment().distributed
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    assert from_environment() == World(0, 1, 0, launched=True) and World(launched=True).distributed
