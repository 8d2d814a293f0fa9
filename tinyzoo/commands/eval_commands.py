"""``tinyzoo eval``, ``ensemble``, ``predict`` and ``analyze``: measuring and inspecting adapted models.

torch, numpy and matplotlib are imported inside the command bodies only.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from tinyzoo.atomic_files import write_atomic
from tinyzoo.console import print_json, print_table
from tinyzoo.errors import TinyzooError
from tinyzoo.evaluate.combine import COMBINATIONS
from tinyzoo.evaluate.views import VIEW_SETS


def data_options(func):
    """--data, --split, --tta, --combine, --crop, --limit, --batch-size, --device, --cache-dir."""
    options = [
        click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Tiny ImageNet directory (wnids.txt, train/, val/, test/) [default: the dataset a run directory was trained on]."),
        click.option("--split", default="val", show_default=True, type=click.Choice(["val", "train", "test"]), help="Which split to run over."),
        click.option("--tta", "views", default="center", show_default=True, type=click.Choice(VIEW_SETS), help="Test-time views (docs/evaluation.md)."),
        click.option("--combine", default="softmax", show_default=True, type=click.Choice(COMBINATIONS), help="How the views' scores are combined."),
        click.option("--crop", type=click.IntRange(min=1), help="View size [default: the run recipe's evaluation.crop, else config.json's input_size]."),
        click.option("--limit", type=click.IntRange(min=1), help="Only the first N images of the split (a quick look)."),
        click.option("--batch-size", "batch_rows", type=click.IntRange(min=1), help="Rows per forward, views included [default: 256 CPU, 1024 CUDA]."),
        click.option("--device", default=None, help="cpu, cuda or cuda:N [default: cuda when available]."),
        click.option("--cache-dir", type=click.Path(file_okay=False), help="Decoded-image cache folder (see docs/data.md)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def data_dir_for(source, data_dir: str | None) -> str:
    """``--data``, or else the dataset the model's training run read (its run.json)."""
    if data_dir:
        return data_dir
    if source.run_dir is not None and (Path(source.run_dir) / "run.json").is_file():
        from tinyzoo.train.rundir import read_settings

        recorded = read_settings(source.run_dir).get("data")
        if recorded and Path(recorded).is_dir():
            return recorded
    raise click.UsageError(f"give --data DIR: {source.argument} is not in a run directory whose dataset is still on disk")


def open_data(data_dir: str, split: str, cache_dir: str | None):
    from tinyzoo.data.cache import open_split

    return open_split(data_dir, split, cache_dir=cache_dir)


def predict_source(source, data, opts: dict):
    """Load ``source``'s model and run it over ``data`` with the command's options."""
    from tinyzoo.cpu_threads import configure_for
    from tinyzoo.evaluate import model_source
    from tinyzoo.evaluate.predictions import predict_split

    configure_for(opts["device"])  # on the CPU: the cores idle now (docs/training.md, "Devices and speed")
    net = model_source.load(source)
    preprocess = model_source.preprocess_for(source, net, data_dir=opts["data_dir"], cache_dir=opts["cache_dir"], crop=opts["crop"])
    predictions = predict_split(net, data, views=opts["views"], combine=opts["combine"], preprocess=preprocess, limit=opts["limit"],
                                batch_rows=opts["batch_rows"], device=opts["device"], source=source.argument)
    return net, predictions


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def write_submission(path: str, predictions) -> int:
    """The challenge's submission file: one ``image_name wnid`` line per image; returns the count."""
    top1 = predictions.predictions
    lines = [f"{Path(f).name} {predictions.class_wnids[int(k)]}" for f, k in zip(predictions.files, top1)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "\n".join(lines) + "\n")
    return len(lines)


def default_out(source, *parts: str) -> Path:
    """``<run or model dir>/eval/...`` for a local model, ``./tinyzoo-eval/<repo>/...`` for a Hub one."""
    if source.kind == "hub":
        return Path("tinyzoo-eval", source.label, *parts)
    return Path(source.run_dir or source.path) / "eval" / Path(*parts)


def metrics_record(predictions, split: str, seconds: float, **extra) -> dict:
    """What metrics.json holds: the run's settings and, with labels, top-1/top-5/per-class."""
    record = {"model": predictions.source, "split": split, "views": predictions.views, "combine": predictions.combine,
              "images": len(predictions.labels), **extra}
    if predictions.labelled:
        record.update(predictions.summary())
    record["seconds"] = round(seconds, 3)
    return record


@click.command("eval")
@click.argument("model")
@data_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder for metrics.json [default: MODEL's eval/SPLIT-TTA-COMBINE].")
@click.option("--submission", type=click.Path(dir_okay=False), help="Also write the challenge's 'image_name wnid' file (use with --split test).")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json to stdout.")
def eval_command(model, data_dir, split, views, combine, crop, limit, batch_rows, device, cache_dir, out_dir, submission, as_json):
    """Top-1, top-5 and per-class accuracy of MODEL on a split, with test-time views.

    \b
    MODEL: an adapted-model directory, a run directory (its best/) or a Hub id ORG/NAME.
    `tinyzoo eval runs/r18 --data tiny-imagenet-200 --tta 12crop --combine expsum` is Kim's setting;
    `--split test --submission sub.txt` writes one 'image_name wnid' line per test image.
    """
    import time

    from tinyzoo.evaluate import model_source

    source = model_source.resolve(model)
    data_dir = data_dir_for(source, data_dir)
    opts = dict(data_dir=data_dir, views=views, combine=combine, crop=crop, limit=limit, batch_rows=batch_rows, device=device, cache_dir=cache_dir)
    data = open_data(data_dir, split, cache_dir)
    start = time.perf_counter()
    _, predictions = predict_source(source, data, opts)
    record = metrics_record(predictions, split, time.perf_counter() - start)
    out = Path(out_dir) if out_dir else default_out(source, f"{split}-{views}-{combine}")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "metrics.json", json.dumps(record, indent=2) + "\n")
    if submission:
        record["submission"] = str(submission)
        record["submission_lines"] = write_submission(submission, predictions)
    if as_json:
        print_json(record)
        return
    rows = [["model", source.argument], ["split", f"{split} ({record['images']} images)"], ["views", f"{views}, combined by {combine}"]]
    if predictions.labelled:
        rows += [["top-1", pct(record["top1"])], ["top-5", pct(record["top5"])]]
        per_class = sorted(record["per_class"].items(), key=lambda kv: kv[1])
        names = dict(zip(predictions.class_wnids, predictions.class_names))
        rows.append(["worst classes", ", ".join(f"{names[w].split(',')[0]} {pct(a)}" for w, a in per_class[:3])])
        rows.append(["best classes", ", ".join(f"{names[w].split(',')[0]} {pct(a)}" for w, a in per_class[::-1][:3])])
    else:
        rows.append(["top-1", f"no labels in the {split} split"])
    rows.append(["metrics", str(out / "metrics.json")])
    if submission:
        rows.append(["submission", f"{submission} ({record['submission_lines']} lines)"])
    print_table(rows, ["", "evaluation"])


@click.command("ensemble")
@click.argument("models", nargs=-1, required=True)
@data_options
@click.option("--method", default="softmax", show_default=True, type=click.Choice(["softmax", "vote"]),
              help="softmax: Milani's average, best size chosen on the split; vote: Zhai's majority vote.")
@click.option("--fallback", help="vote: the MODEL whose top-1 decides when no class has the most votes [default: the first MODEL].")
@click.option("--snapshots", is_flag=True, help="A run directory stands for all models in its snapshots/ (not its best/).")
@click.option("--size", type=click.IntRange(min=1), help="softmax: use the N best members instead of choosing N on the split.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder for metrics.json and ensemble_size.png.")
@click.option("--submission", type=click.Path(dir_okay=False), help="Also write the ensemble's 'image_name wnid' file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def ensemble_command(models, data_dir, split, views, combine, crop, limit, batch_rows, device, cache_dir, method, fallback, snapshots, size, out_dir, submission, as_json):
    """Ensemble several MODELs (or a run's snapshots with --snapshots) on a split.

    \b
    MODEL: an adapted-model directory, a run directory (its best/) or a Hub id ORG/NAME.
    --method softmax (Milani): members sorted best-first; top-1 for every ensemble size, the best
      size kept; the curve is plotted in ensemble_size.png.
    --method vote (Zhai): every member's top-1 is a vote; when no class has the most votes alone,
      --fallback decides.
    Every member sees the split through --tta views combined by --combine.
    """
    import time

    import numpy as np

    from tinyzoo.evaluate import ensemble, metrics, model_source
    from tinyzoo.evaluate.predictions import Predictions

    sources = model_source.expand(list(models), snapshots=snapshots)
    data_dir = data_dir_for(sources[0], data_dir)
    opts = dict(data_dir=data_dir, views=views, combine=combine, crop=crop, limit=limit, batch_rows=batch_rows, device=device, cache_dir=cache_dir)
    data = open_data(data_dir, split, cache_dir)
    start = time.perf_counter()
    members = [predict_source(s, data, opts)[1] for s in sources]
    for s, m in zip(sources, members):
        if m.class_wnids != members[0].class_wnids:
            raise TinyzooError(f"ensemble member {s.argument} predicts other classes than {sources[0].argument} (config.json wnids differ)")
    first = members[0]
    labels = first.labels
    record: dict = {"method": method, "split": split, "views": views, "combine": combine, "images": len(labels),
                    "members": [{"model": s.argument, **({"top1": metrics.topk_accuracy(m.probs, labels, 1)} if first.labelled else {})}
                                for s, m in zip(sources, members)]}
    out = Path(out_dir) if out_dir else default_ensemble_out(sources, method, split)
    out.mkdir(parents=True, exist_ok=True)
    if method == "vote":
        fallback_probs, fallback_name = fallback_member(fallback, sources, members, data, opts)
        result = ensemble.majority_vote([m.probs for m in members], fallback_probs)
        probs = result.scores
        record.update({"fallback": fallback_name, "fallback_images": int(result.used_fallback.sum())})
    else:
        member_probs = [m.probs for m in members]
        if size is not None or not first.labelled:
            order = (sorted(range(len(members)), key=lambda i: -record["members"][i]["top1"]) if first.labelled else list(range(len(members))))
            keep = order[: size or len(members)]
            probs = ensemble.softmax_average([member_probs[i] for i in keep])
            record.update({"size": len(keep), "kept": [sources[i].argument for i in keep]})
        else:
            selection = ensemble.greedy_size(member_probs, labels)
            probs = selection.probs
            plot = out / "ensemble_size.png"
            ensemble.plot_size_curve(selection, plot, title=f"softmax ensemble on {split} ({views}/{combine})")
            record.update({"size": selection.best_size, "kept": [sources[i].argument for i in selection.members],
                           "top1_by_size": selection.top1_by_size, "plot": str(plot)})
    combined = Predictions(np.asarray(probs), labels, first.files, first.class_wnids, first.class_names, views, combine,
                           source=f"{method} ensemble of {len(members)}")
    record.update(metrics_record(combined, split, time.perf_counter() - start, method=method, members=record["members"]))
    write_atomic(out / "metrics.json", json.dumps(record, indent=2) + "\n")
    if submission:
        record["submission"] = str(submission)
        record["submission_lines"] = write_submission(submission, combined)
    if as_json:
        print_json(record)
        return
    print_table([[m["model"], pct(m.get("top1"))] for m in record["members"]], ["member", "top-1"])
    click.echo("")
    if "top1_by_size" in record:
        print_table([[n, pct(a), "<- best" if n == record["size"] else ""] for n, a in enumerate(record["top1_by_size"], 1)],
                    ["size", "top-1", ""])
        click.echo("")
    rows = [["method", method], ["images", record["images"]]]
    if method == "vote":
        rows.append(["fallback", f"{record['fallback']} (decided {record['fallback_images']} images)"])
    else:
        rows.append(["size", f"{record['size']} of {len(members)}"])
    if combined.labelled:
        rows += [["top-1", pct(record["top1"])], ["top-5", pct(record["top5"])]]
    rows.append(["metrics", str(out / "metrics.json")])
    if submission:
        rows.append(["submission", f"{submission} ({record['submission_lines']} lines)"])
    print_table(rows, ["", "ensemble"])


def default_ensemble_out(sources, method: str, split: str) -> Path:
    runs = {s.run_dir for s in sources}
    if len(runs) == 1 and None not in runs:
        return Path(next(iter(runs))) / "eval" / f"ensemble-{method}-{split}"
    return Path("tinyzoo-eval", f"ensemble-{method}-{split}")


def fallback_member(fallback, sources, members, data, opts: dict):
    """The fallback's probabilities and name: a member when it is one, else run on the split."""
    from tinyzoo.evaluate import model_source

    if fallback is None:
        return members[0].probs, sources[0].argument
    chosen = model_source.resolve(fallback)
    for s, m in zip(sources, members):
        if Path(s.path).resolve() == Path(chosen.path).resolve():
            return m.probs, chosen.argument
    _, extra = predict_source(chosen, data, opts)
    if extra.class_wnids != members[0].class_wnids:
        raise TinyzooError(f"--fallback {fallback} predicts other classes than the ensemble's members (config.json wnids differ)")
    return extra.probs, chosen.argument


@click.command("predict")
@click.argument("model")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--topk", default=5, show_default=True, type=click.IntRange(min=1), help="How many classes to show per image.")
@click.option("--tta", "views", default="center", show_default=True, type=click.Choice(VIEW_SETS), help="Test-time views.")
@click.option("--combine", default="softmax", show_default=True, type=click.Choice(COMBINATIONS), help="How the views' scores are combined.")
@click.option("--crop", type=click.IntRange(min=1), help="View size [default: the run recipe's evaluation.crop, else config.json's input_size].")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="The training data, when the model's run normalises with its statistics.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N [default: cuda when available].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one entry per image.")
def predict_command(model, images, topk, views, combine, crop, data_dir, device, as_json):
    """The top classes of MODEL for each IMAGE, with their probabilities.

    \b
    MODEL: an adapted-model directory, a run directory (its best/) or a Hub id ORG/NAME.
    Images that are not 64x64 are resized to 64x64 first (bicubic), as the dataset cache does.
    Class names come from the model's config.json (the words.txt names it was adapted with).
    """
    import numpy as np

    from tinyzoo.cpu_threads import configure_for
    from tinyzoo.data.layout import read_image
    from tinyzoo.evaluate import metrics, model_source
    from tinyzoo.evaluate.predictions import model_classes, run_model

    source = model_source.resolve(model)
    net = model_source.load(source)
    preprocess = model_source.preprocess_for(source, net, data_dir=data_dir, crop=crop)
    wnids, names = model_classes(net)
    pixels = np.stack([read_image(path)[0] for path in images])
    configure_for(device)  # on the CPU: the cores idle now
    probs = run_model(net, pixels, views=views, combine=combine, preprocess=preprocess, device=device, desc="predicting")
    best = metrics.topk_indices(probs, topk)
    results = [{"image": str(path), "top": [{"rank": r + 1, "wnid": wnids[k], "name": names[k], "probability": float(probs[i, k])}
                                            for r, k in enumerate(best[i])]} for i, path in enumerate(images)]
    if as_json:
        print_json(results)
        return
    rows = []
    for result in results:
        for entry in result["top"]:
            rows.append([result["image"] if entry["rank"] == 1 else "", entry["rank"], f"{100 * entry['probability']:.2f}%", entry["wnid"], entry["name"]])
    print_table(rows, ["image", "rank", "probability", "wnid", "name"])


@click.command("analyze")
@click.argument("model")
@data_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the tables, PNGs and index.html.")
@click.option("--before", help="Draw MODEL's first-layer filters beside this one's: a MODEL, or an architecture name (its ImageNet weights).")
@click.option("--before-weights", help="With --before ARCH: the weights source to read instead of the architecture's default (e.g. none).")
@click.option("--misclassified", default=24, show_default=True, type=click.IntRange(min=0), help="How many misclassified images to show.")
@click.option("--json", "as_json", is_flag=True, help="Print analysis.json to stdout.")
def analyze_command(model, data_dir, split, views, combine, crop, limit, batch_rows, device, cache_dir, out_dir, before, before_weights, misclassified, as_json):
    """Error analysis of MODEL, as the reports did it, written to --out with an index.html.

    \b
    MODEL: an adapted-model directory, a run directory (its best/) or a Hub id ORG/NAME.
    Writes class_errors.csv (per class, worst first, with how many distinct wrong classes),
    confused_pairs.csv, misclassified.png (true name on top, predicted below), confusion.png,
    filters.png (first-layer filters), filters_before_after.png (with --before), analysis.json
    and index.html tying them together.
    """
    from tinyzoo.evaluate import analysis, model_source

    if split == "test":
        raise click.UsageError("the test split has no labels to analyse errors against; use --split val (or train)")
    source = model_source.resolve(model)
    data_dir = data_dir_for(source, data_dir)
    opts = dict(data_dir=data_dir, views=views, combine=combine, crop=crop, limit=limit, batch_rows=batch_rows, device=device, cache_dir=cache_dir)
    data = open_data(data_dir, split, cache_dir)
    net, predictions = predict_source(source, data, opts)
    filters = analysis.first_conv_weight(net)
    before_filters, before_label = (None, "")
    if before:
        before_filters, before_label = before_filter_weight(before, before_weights)
    images = data.images if limit is None else data.images[:limit]
    data_out = analysis.write_report(out_dir, predictions, images, filters=filters, before_filters=before_filters,
                                     before_label=before_label, after_label=f"after: {source.label}", misclassified=misclassified)
    if as_json:
        print_json(data_out)
        return
    click.echo(f"{source.argument} on {split} ({data_out['images']} images, {views}/{combine}): top-1 {pct(data_out['top1'])}, top-5 {pct(data_out['top5'])}\n")
    rows = [[analysis.short_name(r["name"]), r["wnid"], f"{r['errors']}/{r['images']}", f"{100 * r['error_rate']:.1f}%", r["distinct_wrong"],
             ", ".join(f"{analysis.short_name(c['name'])} ({c['count']})" for c in r["confused_with"])] for r in data_out["class_errors"][:10]]
    print_table(rows, ["worst classes", "wnid", "errors", "error", "distinct wrong", "most often taken for"])
    if data_out["confused_pairs"]:
        click.echo("")
        print_table([[analysis.short_name(p["true_name"]), analysis.short_name(p["predicted_name"]), p["count"]] for p in data_out["confused_pairs"][:10]],
                    ["true class", "predicted as", "images"])
    click.echo(f"\nwrote {Path(out_dir) / 'index.html'} ({', '.join(sorted(data_out['files'].values()))})")


def before_filter_weight(before: str, weights_source: str | None):
    """First-layer filters of ``--before``: a MODEL, or an architecture name's network with
    ``weights_source`` (default: its ImageNet weights). Returns ``(weight, label)``."""
    from tinyzoo.evaluate import analysis, model_source
    from tinyzoo.registry import get_registry

    looks_like_path = Path(before).expanduser().exists()
    if looks_like_path or ("/" in before and not weights_source):
        source = model_source.resolve(before)
        return analysis.first_conv_weight(model_source.load(source)), f"before: {source.label}"
    spec = get_registry().architecture(before)
    from tinyzoo.builders import build
    from tinyzoo.weights import load_weights

    loaded = load_weights(weights_source, spec)
    if loaded.state_dict is not None and spec.first_conv and f"{spec.first_conv}.weight" in loaded.state_dict:
        weight = loaded.state_dict[f"{spec.first_conv}.weight"].float()
    else:
        import torch

        torch.manual_seed(0)  # a reproducible picture of random initialisation
        network = build(spec)
        if loaded.state_dict is not None:
            network.load_state_dict(loaded.state_dict, strict=False)
        weight = analysis.first_conv_weight(network, spec.first_conv)
    return weight, f"before: {spec.name}, " + ("random initialisation" if loaded.state_dict is None else loaded.source)


COMMANDS = [eval_command, ensemble_command, predict_command, analyze_command]
