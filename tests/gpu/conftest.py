"""The device the ``gpu``-marked tests run on.

CUDA when the machine has it; ``TINYZOO_TEST_DEVICE=cpu`` (what ``tests/gpu/check.sh --cpu``
sets) runs the same tests on the CPU, so every line of them runs in CI; without either they
skip.
"""

from __future__ import annotations

import os

import pytest
import torch


def test_device() -> torch.device | None:
    """``$TINYZOO_TEST_DEVICE``, else ``cuda`` when available, else None."""
    wanted = os.environ.get("TINYZOO_TEST_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda") if torch.cuda.is_available() else None


test_device.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def device() -> torch.device:
    chosen = test_device()
    if chosen is None:
        pytest.skip("needs a GPU (or TINYZOO_TEST_DEVICE=cpu, as tests/gpu/check.sh --cpu sets)")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"TINYZOO_TEST_DEVICE={chosen} but torch sees no CUDA device")
    if chosen.type == "cpu":
        from tinyzoo.cpu_threads import configure

        configure()  # the idle cores, as tinyzoo train: two spinning threads on a busy machine are many times slower
    return chosen
