"""What a run reads: the decoded splits, the training augmentation, and the preprocessing it records.

:meth:`RunData.open` opens the training and validation splits of ``TrainSettings.data``, builds
the training :class:`~tinyzoo.data.augment.Pipeline` from ``Recipe.train_augment_config`` and
turns the evaluation config (``Recipe.eval_augment_config``: ``data.eval`` with the crop of
``evaluation.crop``) into the :class:`~tinyzoo.preprocess.Preprocess` the trainer writes into
every model it saves, with ``dataset`` and ``pixel`` statistics taken from the training split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyzoo.errors import TinyzooError
from tinyzoo.preprocess import Preprocess


@dataclass
class RunData:
    """The splits (``val_split`` None when there is none or it is empty), the training pipeline,
    the preprocessing of evaluation, and the number of classes the model predicts."""

    train_split: Any
    val_split: Any
    train_pipeline: Any
    preprocess: Preprocess
    num_classes: int

    @classmethod
    def open(cls, recipe, settings, runtime, log) -> RunData:
        """Open ``settings.data`` for ``recipe``; channels_last batches when ``runtime`` computes so."""
        from tinyzoo.data.augment import Pipeline
        from tinyzoo.data.cache import open_split

        root = settings.data
        train = open_split(root, "train", cache_dir=settings.cache_dir)
        try:
            val = open_split(root, "val", cache_dir=settings.cache_dir)
        except TinyzooError as exc:
            log(f"no validation split ({exc}); training without validation")
            val = None
        if recipe.model.classes < train.num_classes:
            raise TinyzooError(
                f"model.classes is {recipe.model.classes} but the dataset at {root} has {train.num_classes} classes; "
                f"use --set model.classes={train.num_classes}"
            )
        train_config = recipe.train_augment_config()
        if runtime.channels_last:
            train_config.setdefault("channels_last", True)
        pipeline = Pipeline.from_config(train_config, stats=train)
        evaluation = Pipeline.from_config(recipe.eval_augment_config(), stats=train, train=False)
        return cls(train, val if val is not None and len(val) else None, pipeline, evaluation.preprocess(), recipe.model.classes)
