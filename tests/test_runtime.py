"""One device and precision policy for training and scoring (tinyzoo.runtime)."""

from __future__ import annotations

import pytest
import torch

from tinyzoo.errors import TinyzooError
from tinyzoo.recipe import RunConfig
from tinyzoo.runtime import Runtime, amp_dtype


def test_scoring_policy_on_the_cpu_and_on_cuda():
    runtime = Runtime.for_inference("cpu")
    assert (runtime.device.type, runtime.amp, runtime.channels_last, runtime.world.world_size) == ("cpu", None, True, 1)
    assert amp_dtype("auto", torch.device("cuda")) is torch.bfloat16 and amp_dtype("off", torch.device("cuda")) is None
    assert amp_dtype("fp16", torch.device("cuda")) is torch.float16


def test_training_follows_the_recipe_and_scores_as_evaluation_does():
    runtime = Runtime.for_training(RunConfig(device="cpu", amp="bf16", channels_last=False))
    assert (runtime.amp, runtime.channels_last) == (torch.bfloat16, False)
    scoring = runtime.scoring()
    assert (scoring.amp, scoring.channels_last, scoring.device) == (None, False, runtime.device)
    assert runtime.grad_scaler() is None


def test_inputs_and_weights_in_channels_last():
    runtime = Runtime.for_inference("cpu")
    model = runtime.prepare(torch.nn.Conv2d(3, 4, 3))
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    assert runtime.inputs(torch.zeros(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)
    assert runtime.inputs(torch.zeros(2, 3)).shape == (2, 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_one_line_error():
    with pytest.raises(TinyzooError, match=r"^--device cuda: CUDA is not available on this machine; use --device cpu$"):
        Runtime.for_inference("cuda")
    with pytest.raises(TinyzooError, match=r"^--device gpu9: not a device; use auto, cpu, cuda or cuda:N$"):
        Runtime.for_inference("gpu9")
