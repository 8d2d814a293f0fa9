"""CPU thread rules: idle cores for model phases, one thread for augmentation, sleeping waiters."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tinyzoo import cpu_threads
from tinyzoo.data.loader import BatchLoader


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_limited_caps_the_threads_inside_the_block_only(threads):
    torch.set_num_threads(2)
    with cpu_threads.limited():
        assert torch.get_num_threads() == cpu_threads.AUGMENT_THREADS == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), cpu_threads.limited(1):
        raise RuntimeError("restored even so")
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    with cpu_threads.limited(2):  # never raises the count
        assert torch.get_num_threads() == 1


def test_the_cpu_loader_augments_on_one_thread(threads):
    seen = []

    def pipeline(images, generator, labels=None, num_classes=None):
        seen.append(torch.get_num_threads())
        return images.float(), labels

    torch.set_num_threads(2)
    split = SimpleNamespace(images=np.zeros((6, 64, 64, 3), np.uint8), labels=np.arange(6))
    assert len(list(BatchLoader(split, 2, pipeline=pipeline))) == 3
    assert seen == [1, 1, 1] and torch.get_num_threads() == 2  # the model phase keeps its threads


def test_configure_takes_the_argument_then_the_environment_then_the_idle_cores(threads, monkeypatch):
    monkeypatch.delenv("TINYZOO_THREADS", raising=False)
    assert cpu_threads.configure(1) == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("TINYZOO_THREADS", "2")
    assert cpu_threads.configure() == 2 and cpu_threads.environment_threads() == 2
    monkeypatch.delenv("TINYZOO_THREADS")
    monkeypatch.setattr(cpu_threads.os, "getloadavg", lambda: (50.0, 0.0, 0.0))  # a saturated machine: still one thread
    assert cpu_threads.configure() == 1 == cpu_threads.idle_cores()
    assert cpu_threads.configure_for("cpu") == 1 and cpu_threads.configure_for("cuda:0") is None


def test_passive_wait_only_before_torch_and_never_over_the_users_choice():
    assert cpu_threads.passive_wait({}) is False  # torch is imported in this process
    probe = ("import os, sys; from tinyzoo.cpu_threads import passive_wait; print(passive_wait(), os.environ['OMP_WAIT_POLICY'], "
             "'torch' in sys.modules)")
    fresh = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PATH": ""}, timeout=60)
    assert fresh.stdout.split() == ["True", "PASSIVE", "False"], fresh.stderr
    chosen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"OMP_WAIT_POLICY": "ACTIVE"}, timeout=60)
    assert chosen.stdout.split() == ["False", "ACTIVE", "False"], chosen.stderr


def test_the_command_line_sets_the_wait_policy_before_any_command_runs():
    probe = "import os, tinyzoo.cli as c; c.cli.main = lambda **kw: print(os.environ.get('OMP_WAIT_POLICY')); c.main()"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PATH": ""}, timeout=60)
    assert result.stdout.strip() == "PASSIVE", result.stderr
