"""Learning-rate schedules give the documented sequences; optimizers are the ones recipes name."""

from __future__ import annotations

import math

import pytest
import torch

from tinyzoo.errors import TinyzooError
from tinyzoo.recipe import OptimizerConfig, ScheduleConfig
from tinyzoo.train.optim import LrSchedule, build_optimizer, set_lr


def rates(config: ScheduleConfig, base=0.1, total=20, per_epoch=4) -> list[float]:
    schedule = LrSchedule(config, base, total, per_epoch)
    return [schedule.lr(step) for step in range(total)]


def test_constant():
    assert rates(ScheduleConfig(name="constant")) == [0.1] * 20


def test_step_decays_every_step_size_epochs():
    got = rates(ScheduleConfig(name="step", step_size=2, gamma=0.1), total=16, per_epoch=4)
    assert got == pytest.approx([0.1] * 8 + [0.01] * 8)


def test_exponential_decays_once_per_epoch():
    # Milani: decayed by 0.713 per epoch.
    got = rates(ScheduleConfig(name="exponential", gamma=0.713), total=12, per_epoch=4)
    assert got == pytest.approx([0.1 * 0.713**e for e in range(3) for _ in range(4)])


def test_cosine_with_warmup():
    config = ScheduleConfig(name="cosine", warmup_epochs=1, min_lr=0.0)
    got = rates(config, total=12, per_epoch=4)
    # Warm-up: step s gets (s + 1) / 4 of the rate; the cosine starts after it.
    assert got[:4] == pytest.approx([0.1 * (s + 1) / 4 for s in range(4)])
    assert got[4:] == pytest.approx([0.05 * (1 + math.cos(math.pi * (s - 4) / 8)) for s in range(4, 12)])
    assert got[4] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(got[4:], got[5:]))


def test_cyclic_cosine_is_yus_formula():
    # Yu: lr/2 * (cos(pi * ((step - 1) % L) / L) + 1), L = total / cycles, restarting each cycle.
    total, cycles = 20, 5
    got = rates(ScheduleConfig(name="cyclic_cosine", cycles=cycles), total=total)
    length = total // cycles
    assert got == pytest.approx([0.1 / 2 * (math.cos(math.pi * (s % length) / length) + 1) for s in range(total)])
    assert [got[c * length] for c in range(cycles)] == pytest.approx([0.1] * cycles)
    assert got[length - 1] < 0.02


def test_plateau_decays_after_patience_validations_without_improvement():
    schedule = LrSchedule(ScheduleConfig(name="plateau", patience=2, factor=0.1), 0.01, 100, 10)
    seen = []
    for error in [0.5, 0.4, 0.41, 0.40, 0.42, 0.39, 0.39, 0.39, 0.39]:
        decayed = schedule.observe(error)
        seen.append((round(schedule.lr(0), 8), decayed))
    assert [lr for lr, _ in seen] == [0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001, 0.0001]
    assert [d for _, d in seen].count(True) == 2


def test_plateau_state_round_trips():
    schedule = LrSchedule(ScheduleConfig(name="plateau", patience=0), 0.01, 10, 5)
    schedule.observe(0.5)
    schedule.observe(0.6)
    other = LrSchedule(ScheduleConfig(name="plateau", patience=0), 0.01, 10, 5)
    other.load_state_dict(schedule.state_dict())
    assert other.lr(3) == schedule.lr(3) == pytest.approx(0.001)


def test_non_plateau_schedules_ignore_validation():
    schedule = LrSchedule(ScheduleConfig(name="constant"), 0.1, 10, 5)
    assert not schedule.observe(0.9) and not schedule.observe(0.95)
    assert schedule.lr(9) == 0.1


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_build_optimizer(name, cls):
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(params, OptimizerConfig(name=name, lr=0.01, weight_decay=1e-4, nesterov=True))
    assert isinstance(opt, cls)
    assert opt.param_groups[0]["weight_decay"] == 1e-4
    if name == "sgd":
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9
    set_lr(opt, 0.5)
    assert opt.param_groups[0]["lr"] == 0.5


def test_optimizer_without_parameters_is_an_error():
    with pytest.raises(TinyzooError, match="trains no parameters"):
        build_optimizer([], OptimizerConfig(name="sgd", lr=0.1))


def test_step_size_in_optimizer_steps_for_iteration_stages():
    # Zhai: lr 0.1 for 6,000 iterations with a step size of 2,000 (here 6 and 2).
    schedule = LrSchedule(ScheduleConfig(name="step", step_size=2, gamma=0.1), 0.1, 6, 40, step_size_unit="steps")
    assert [schedule.lr(s) for s in range(6)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
