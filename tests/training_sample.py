"""What the training tests share: a tiny learnable dataset and small recipes to train on it."""

from __future__ import annotations

import copy
from pathlib import Path

from tinyzoo.recipe import parse_recipe

CLASSES, PER_CLASS = 4, 20  # 80 training and 8 validation images


def write_training_sample(root: Path) -> Path:
    """The sample dataset (4 classes x 20 images, 2 validation images each) at ``root``."""
    from tinyzoo.data.sample import write_sample

    write_sample(root, classes=CLASSES, per_class=PER_CLASS, val_per_class=2, test_per_class=1, seed=0)
    return root


def stage(name="all", train="all", *, iterations=None, epochs=None, batch_size=8, lr=0.05, **fields) -> dict:
    """A raw stage table: SGD at ``lr`` unless ``optimizer`` is given."""
    data = {"name": name, "train": train, "batch_size": batch_size, "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9}}
    if iterations is not None:
        data["iterations"] = iterations
    if epochs is not None:
        data["epochs"] = epochs
    data.update(fields)
    return data


def tiny_recipe(*stages: dict, arch="resnet20_zhai", train=None, **sections) -> object:
    """A validated recipe for a quarter-width ResNet-20 (random weights) on the sample dataset."""
    data = {
        "name": "tiny",
        "model": {"arch": arch, "classes": CLASSES, "weights": "none"},
        "data": {"train": train if train is not None else {"crop": 56, "flip": True}, "eval": {}},
        "stages": list(stages) or [stage(epochs=1)],
        "run": {"keep_snapshots": 2},
    }
    if arch == "resnet20_zhai":
        data["model"]["options"] = {"width": 0.25}
    for key, value in sections.items():
        data.setdefault(key, {})
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return parse_recipe(copy.deepcopy(data), source="test recipe")
