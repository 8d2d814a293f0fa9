"""Optimizers and learning-rate schedules for one training stage.

A schedule here is a pure function of the optimizer step (plus, for ``plateau``, the
validation errors it has been shown), so that a resumed run computes exactly the
learning rates an uninterrupted one does. The trainer sets the rate before every step.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tinyzoo.errors import TinyzooError


def build_optimizer(params, config):
    """A torch optimizer over ``params`` from an ``OptimizerConfig`` (sgd, adam or adamw)."""
    params = list(params)
    if not params:
        raise TinyzooError("this stage trains no parameters: check the stage's train patterns")
    if config.name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas), eps=config.eps, weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, betas=tuple(config.betas), eps=config.eps, weight_decay=config.weight_decay)
    raise TinyzooError(f"unknown optimizer {config.name!r}; allowed: sgd, adam, adamw")


class LrSchedule:
    """The learning rate of every optimizer step of a stage.

    ``lr(step)`` gives the rate for optimizer step ``step`` (0-based) of a stage of
    ``total_steps`` steps with ``steps_per_epoch`` steps an epoch. ``warmup_epochs`` is
    converted to steps; ``step_size`` counts epochs, or optimizer steps with
    ``step_size_unit="steps"`` (stages measured in iterations, as Caffe's). Schedules:

    - ``constant``: ``base``.
    - ``step``: ``base * gamma ** floor(step / step_size_in_steps)``.
    - ``exponential``: ``base * gamma ** floor(epoch)`` (decayed once per epoch, Milani).
    - ``cosine``: half a cosine from ``base`` at the end of warm-up to ``min_lr`` at the end.
    - ``cyclic_cosine``: Yu's ``base/2 * (cos(pi * (step % L) / L) + 1)``, ``L = total / cycles``,
      floored at ``min_lr``; the rate restarts at ``base`` each cycle.
    - ``plateau``: ``base * factor ** k`` where ``k`` counts the times the validation error
      failed to improve for ``patience`` validations in a row (see :meth:`observe`), floored
      at ``min_lr``.

    With ``warmup_epochs`` the rate rises linearly from near 0 to the schedule's value over
    the warm-up steps (step ``s`` gets ``(s + 1) / warmup_steps`` of it).
    """

    def __init__(self, config, base_lr: float, total_steps: int, steps_per_epoch: float, *, step_size_unit: str = "epochs"):
        self.config = config
        self.base = float(base_lr)
        self.total = max(1, int(total_steps))
        self.per_epoch = max(float(steps_per_epoch), 1e-12)
        self.warmup = int(round(config.warmup_epochs * self.per_epoch))
        if config.step_size is not None:
            self.step_steps = config.step_size * (1.0 if step_size_unit == "steps" else self.per_epoch)
        self.decays = 0  # plateau: decays so far
        self.best = math.inf  # plateau: best validation error so far
        self.bad = 0  # plateau: validations in a row without improvement

    def lr(self, step: int) -> float:
        """The learning rate for optimizer step ``step`` (0-based) of the stage."""
        c = self.config
        epoch = step / self.per_epoch
        if c.name == "constant":
            value = self.base
        elif c.name == "step":
            value = self.base * c.gamma ** math.floor(step / self.step_steps + 1e-9)
        elif c.name == "exponential":
            value = self.base * c.gamma ** math.floor(epoch + 1e-9)
        elif c.name == "cosine":
            span = max(1, self.total - self.warmup)
            t = min(max(step - self.warmup, 0) / span, 1.0)
            value = c.min_lr + (self.base - c.min_lr) * 0.5 * (1 + math.cos(math.pi * t))
        elif c.name == "cyclic_cosine":
            length = max(1, self.total // c.cycles)
            value = max(c.min_lr, self.base / 2 * (math.cos(math.pi * (step % length) / length) + 1))
        elif c.name == "plateau":
            value = max(c.min_lr, self.base * c.factor**self.decays)
        else:
            raise TinyzooError(f"unknown schedule {c.name!r}")
        if step < self.warmup:
            value *= (step + 1) / self.warmup
        return value

    def observe(self, val_error: float) -> bool:
        """Show the schedule a validation error (``plateau`` only); True when it decayed."""
        if self.config.name != "plateau":
            return False
        # Kim: decay when validation error has not improved notably (0.1% relative) for `patience` epochs.
        if val_error < self.best * (1 - 1e-3):
            self.best, self.bad = val_error, 0
            return False
        self.bad += 1
        if self.bad > self.config.patience:
            self.decays, self.bad = self.decays + 1, 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue the schedule (the plateau's memory)."""
        return {"decays": self.decays, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decays, self.best, self.bad = int(state["decays"]), float(state["best"]), int(state["bad"])


def set_lr(optimizer, lr: float) -> None:
    """Set every parameter group of ``optimizer`` to ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
