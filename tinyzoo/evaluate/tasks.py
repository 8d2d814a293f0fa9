"""What ``tinyzoo eval``, ``ensemble``, ``predict`` and ``analyze`` do, as library calls.

Each takes resolved MODEL arguments (:class:`~tinyzoo.evaluate.model_source.ModelSource`), the
:class:`Options` every evaluation command shares, and where to write; each returns the record
it wrote (``metrics.json``, ``analysis.json``) so the command only prints. Every model is
preprocessed as its config.json says (:mod:`tinyzoo.preprocess`), ``--crop`` aside.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyzoo.atomic_files import write_atomic
from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate import model_source
from tinyzoo.evaluate.predictions import Predictions
from tinyzoo.input_size import check_input_size


@dataclass(frozen=True)
class Options:
    """The options every evaluation command shares (``--data``, ``--split``, ``--tta``, ...)."""

    data_dir: str | None = None
    split: str = "val"
    views: str = "center"
    combine: str = "softmax"
    crop: int | None = None
    limit: int | None = None
    batch_rows: int | None = None
    device: str | None = None
    cache_dir: str | None = None

    def open_data(self):
        """The chosen split of ``data_dir`` (decoded through the cache)."""
        from tinyzoo.data.cache import open_split

        return open_split(self.data_dir, self.split, cache_dir=self.cache_dir)


def predict_source(source, data, options: Options):
    """``(model, Predictions)``: ``source``'s model run over ``data`` as ``options`` say."""
    from tinyzoo import preprocess as preprocessing
    from tinyzoo.cpu_threads import configure_for
    from tinyzoo.evaluate.predictions import predict_split

    configure_for(options.device)  # on the CPU: the cores idle now (docs/training.md, "Devices and speed")
    net = model_source.load(source)
    preprocess = preprocessing.of(net).with_crop(options.crop)
    check_input_size(net, preprocess.view_side, what="evaluation crops (--crop)")
    predictions = predict_split(net, data, views=options.views, combine=options.combine, preprocess=preprocess, limit=options.limit,
                                batch_rows=options.batch_rows, device=options.device, source=source.argument)
    return net, predictions


def eval_out(source, options: Options) -> Path:
    """Where ``tinyzoo eval`` writes by default: the model's ``eval/SPLIT-TTA-COMBINE``."""
    return model_source.eval_dir(source, f"{options.split}-{options.views}-{options.combine}")


def evaluate(source, options: Options, out: Path, submission: str | None = None) -> tuple[dict, Predictions]:
    """``tinyzoo eval``: metrics.json in ``out`` and the challenge's submission file when asked.
    Returns the record (with the submission's line count) and the predictions."""
    data = options.open_data()
    start = time.perf_counter()
    _, predictions = predict_source(source, data, options)
    record = metrics_record(predictions, options.split, time.perf_counter() - start)
    Path(out).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(out) / "metrics.json", json.dumps(record, indent=2) + "\n")
    if submission:
        record["submission"] = str(submission)
        record["submission_lines"] = write_submission(submission, predictions)
    return record, predictions


def ensemble(sources: list, options: Options, out: Path, *, method: str = "softmax", fallback: str | None = None,
             size: int | None = None, submission: str | None = None) -> tuple[dict, Predictions]:
    """``tinyzoo ensemble``: every member run over the split, combined by ``method`` (``softmax``:
    Milani's average, the best size chosen on the split unless ``size`` is given; ``vote``: Zhai's
    majority vote, ``fallback`` deciding ties). Writes metrics.json (and ensemble_size.png)."""
    from tinyzoo.evaluate import ensemble as ensembles

    data = options.open_data()
    start = time.perf_counter()
    members = member_predictions(sources, data, options)
    first = members[0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = ensemble_header(sources, members, method, options)
    if method == "vote":
        fallback_probs, record["fallback"] = fallback_member(fallback, sources, members, data, options)
        vote = ensembles.majority_vote([m.probs for m in members], fallback_probs)
        choice = ensembles.Choice(vote.scores, list(range(len(members))), vote=vote)
        record["fallback_images"] = int(vote.used_fallback.sum())
    else:
        choice = ensembles.softmax_ensemble([m.probs for m in members], first.labels if first.labelled else None, size)
        record.update({"size": len(choice.kept), "kept": [sources[i].argument for i in choice.kept]})
        if choice.selection is not None:
            plot = out / "ensemble_size.png"
            ensembles.plot_size_curve(choice.selection, plot, title=f"softmax ensemble on {options.split} ({options.views}/{options.combine})")
            record.update({"top1_by_size": choice.selection.top1_by_size, "plot": str(plot)})
    combined = Predictions(np.asarray(choice.probs), first.labels, first.files, first.class_wnids, first.class_names, options.views,
                           options.combine, source=f"{method} ensemble of {len(members)}")
    record.update(metrics_record(combined, options.split, time.perf_counter() - start, method=method, members=record["members"]))
    write_atomic(out / "metrics.json", json.dumps(record, indent=2) + "\n")
    if submission:
        record["submission"] = str(submission)
        record["submission_lines"] = write_submission(submission, combined)
    return record, combined


def member_predictions(sources: list, data, options: Options) -> list[Predictions]:
    """Every source's predictions over ``data``; members must predict the same classes."""
    members = [predict_source(s, data, options)[1] for s in sources]
    for s, m in zip(sources, members):
        if m.class_wnids != members[0].class_wnids:
            raise TinyzooError(f"ensemble member {s.argument} predicts other classes than {sources[0].argument} (config.json wnids differ)")
    return members


def ensemble_header(sources: list, members: list[Predictions], method: str, options: Options) -> dict:
    """The start of an ensemble's metrics.json: its settings and each member's own top-1."""
    from tinyzoo.evaluate import metrics

    first = members[0]
    rows = [{"model": s.argument, **({"top1": metrics.topk_accuracy(m.probs, first.labels, 1)} if first.labelled else {})}
            for s, m in zip(sources, members)]
    return {"method": method, "split": options.split, "views": options.views, "combine": options.combine,
            "images": len(first.labels), "members": rows}


def fallback_member(fallback: str | None, sources: list, members: list[Predictions], data, options: Options):
    """The vote's fallback: ``(probabilities, name)`` of a member when it is one (default the first), else run on the split."""
    if fallback is None:
        return members[0].probs, sources[0].argument
    chosen = model_source.resolve(fallback)
    for s, m in zip(sources, members):
        if Path(s.path).resolve() == Path(chosen.path).resolve():
            return m.probs, chosen.argument
    _, extra = predict_source(chosen, data, options)
    if extra.class_wnids != members[0].class_wnids:
        raise TinyzooError(f"--fallback {fallback} predicts other classes than the ensemble's members (config.json wnids differ)")
    return extra.probs, chosen.argument


def default_ensemble_out(sources: list, method: str, split: str) -> Path:
    """``RUN/eval/ensemble-METHOD-SPLIT`` when every member comes from one run, else ``./tinyzoo-eval/...``."""
    runs = {s.run_dir for s in sources}
    if len(runs) == 1 and None not in runs:
        return Path(next(iter(runs))) / "eval" / f"ensemble-{method}-{split}"
    return Path("tinyzoo-eval", f"ensemble-{method}-{split}")


def predict_images(source, paths: list, *, topk: int = 5, views: str = "center", combine: str = "softmax",
                   crop: int | None = None, device: str | None = None) -> list[dict]:
    """``tinyzoo predict``: for each image file, its ``topk`` classes (rank, wnid, name, probability).
    Images that are not 64x64 are resized to it first (bicubic), as the dataset cache does."""
    from tinyzoo import preprocess as preprocessing
    from tinyzoo.cpu_threads import configure_for
    from tinyzoo.data.layout import read_image
    from tinyzoo.evaluate import metrics
    from tinyzoo.evaluate.predictions import model_classes, run_model

    configure_for(device)  # on the CPU: the cores idle now
    net = model_source.load(source)
    wnids, names = model_classes(net)
    preprocess = preprocessing.of(net).with_crop(crop)
    check_input_size(net, preprocess.view_side, what="crops (--crop)")
    pixels = np.stack([read_image(path)[0] for path in paths])
    probs = run_model(net, pixels, views=views, combine=combine, preprocess=preprocess, device=device, desc="predicting")
    best = metrics.topk_indices(probs, topk)
    return [{"image": str(path), "top": [{"rank": r + 1, "wnid": wnids[k], "name": names[k], "probability": float(probs[i, k])}
                                         for r, k in enumerate(best[i])]} for i, path in enumerate(paths)]


def analyze(source, options: Options, out: Path, *, before: str | None = None, before_weights: str | None = None,
            misclassified: int = 24) -> dict:
    """``tinyzoo analyze``: the error analysis of :func:`tinyzoo.evaluate.analysis.write_report` in ``out``,
    with first-layer filters before (``before``: a MODEL or an architecture) and after."""
    from tinyzoo.evaluate import analysis

    data = options.open_data()
    net, predictions = predict_source(source, data, options)
    before_filters, before_label = analysis.filters_of(before, before_weights) if before else (None, "")
    images = data.images if options.limit is None else data.images[:options.limit]
    return analysis.write_report(out, predictions, images, filters=analysis.first_conv_weight(net), before_filters=before_filters,
                                 before_label=before_label, after_label=f"after: {source.label}", misclassified=misclassified)


def metrics_record(predictions: Predictions, split: str, seconds: float, **extra) -> dict:
    """What metrics.json holds: the run's settings and, with labels, top-1/top-5/per-class."""
    record = {"model": predictions.source, "split": split, "views": predictions.views, "combine": predictions.combine,
              "images": len(predictions.labels), **extra}
    if predictions.labelled:
        record.update(predictions.summary())
    record["seconds"] = round(seconds, 3)
    return record


def write_submission(path, predictions: Predictions) -> int:
    """The challenge's submission file: one ``image_name wnid`` line per image; returns the count."""
    top1 = predictions.predictions
    lines = [f"{Path(f).name} {predictions.class_wnids[int(k)]}" for f, k in zip(predictions.files, top1)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "\n".join(lines) + "\n")
    return len(lines)
