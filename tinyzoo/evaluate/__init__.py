"""Evaluation: test-time views, score combinations, metrics, ensembles, predictions and error analysis.

Modules, one job each (importing this package imports neither torch nor matplotlib):

- :mod:`~tinyzoo.evaluate.views`: ``center``, ``full``, ``10crop``, ``12crop``, ``dense`` batches.
- :mod:`~tinyzoo.evaluate.combine`: ``expsum``, ``softmax``, ``logits``, ``vote`` over views.
- :mod:`~tinyzoo.evaluate.metrics`: top-k, per-class accuracy, confusion matrix.
- :mod:`~tinyzoo.evaluate.scoring`: the one scoring loop (eval and the trainer's validation).
- :mod:`~tinyzoo.evaluate.predictions`: a model over images or a split -> probabilities.
- :mod:`~tinyzoo.evaluate.ensemble`: Zhai's majority vote, Milani's softmax average and size choice.
- :mod:`~tinyzoo.evaluate.analysis`: error tables, misclassified grid, filters, confusion, HTML.
- :mod:`~tinyzoo.evaluate.model_source`: MODEL arguments (directory, run, Hub id) -> a loaded model.
- :mod:`~tinyzoo.evaluate.tasks`: what ``eval``, ``ensemble``, ``predict`` and ``analyze`` do.
- :mod:`~tinyzoo.evaluate.figures`: off-screen matplotlib figures.
"""
