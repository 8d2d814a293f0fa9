"""Training: the staged trainer, its stages and run state, optimizers and schedules,
frozen-feature caching and run directories (device, precision and processes are
:mod:`tinyzoo.runtime`'s).

``Trainer(recipe, TrainSettings(data=..., out=...)).run()`` trains a recipe into a run
directory; ``tinyzoo train`` is the command-line face of it. Importing this package imports
torch (the command line imports it only inside the command).
"""

from __future__ import annotations

from tinyzoo.train.rundir import RunDir
from tinyzoo.train.trainer import StopRequested, Trainer, TrainSettings

__all__ = ["RunDir", "StopRequested", "TrainSettings", "Trainer"]
