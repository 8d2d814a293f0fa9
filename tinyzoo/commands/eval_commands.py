"""``tinyzoo eval``, ``ensemble``, ``predict`` and ``analyze``: measuring and inspecting adapted models.

The work is :mod:`tinyzoo.evaluate.tasks`'s; these commands parse options and print tables.
torch, numpy and matplotlib are imported inside the command bodies only.
"""

from __future__ import annotations

from pathlib import Path

import click

from tinyzoo.commands.data_option import DATA, DATA_HELP
from tinyzoo.console import percent, print_json, print_table
from tinyzoo.evaluate.combine import COMBINATIONS
from tinyzoo.evaluate.views import VIEW_SETS

CROP_HELP = "View size [default: config.json's preprocess.crop]."


def data_options(func):
    """--data, --split, --tta, --combine, --crop, --limit, --batch-size, --device, --cache-dir."""
    options = [
        click.option("--data", "data_dir", type=DATA, help=f"{DATA_HELP} [default: the dataset a run directory was trained on]."),
        click.option("--split", default="val", show_default=True, type=click.Choice(["val", "train", "test"]), help="Which split to run over."),
        click.option("--tta", "views", default="center", show_default=True, type=click.Choice(VIEW_SETS), help="Test-time views (docs/evaluation.md)."),
        click.option("--combine", default="softmax", show_default=True, type=click.Choice(COMBINATIONS), help="How the views' scores are combined."),
        click.option("--crop", type=click.IntRange(min=1), help=CROP_HELP),
        click.option("--limit", type=click.IntRange(min=1), help="Only the first N images of the split (a quick look)."),
        click.option("--batch-size", "batch_rows", type=click.IntRange(min=1), help="Rows per forward, views included [default: 256 CPU, 1024 CUDA]."),
        click.option("--device", default=None, help="cpu, cuda or cuda:N [default: cuda when available]."),
        click.option("--cache-dir", type=click.Path(file_okay=False), help="Decoded-image cache folder (see docs/data.md)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def options_for(source, **given):
    """The shared options, ``--data`` defaulting to the dataset the model's training run read (its run.json)."""
    from tinyzoo.evaluate import model_source
    from tinyzoo.evaluate.tasks import Options

    data_dir = given.pop("data_dir") or model_source.recorded_data(source)
    if not data_dir:
        raise click.UsageError(f"give --data DIR: {source.argument} is not part of a training run, so it names no dataset")
    return Options(data_dir=data_dir, **given)


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
    from tinyzoo.evaluate import model_source, tasks

    source = model_source.resolve(model)
    options = options_for(source, data_dir=data_dir, split=split, views=views, combine=combine, crop=crop, limit=limit,
                          batch_rows=batch_rows, device=device, cache_dir=cache_dir)
    out = Path(out_dir) if out_dir else tasks.eval_out(source, options)
    record, predictions = tasks.evaluate(source, options, out, submission)
    if as_json:
        print_json(record)
        return
    rows = [["model", source.argument], ["split", f"{split} ({record['images']} images)"], ["views", f"{views}, combined by {combine}"]]
    if predictions.labelled:
        rows += [["top-1", percent(record["top1"])], ["top-5", percent(record["top5"])]]
        per_class = sorted(record["per_class"].items(), key=lambda kv: kv[1])
        names = dict(zip(predictions.class_wnids, predictions.class_names))
        rows.append(["worst classes", ", ".join(f"{names[w].split(',')[0]} {percent(a)}" for w, a in per_class[:3])])
        rows.append(["best classes", ", ".join(f"{names[w].split(',')[0]} {percent(a)}" for w, a in per_class[::-1][:3])])
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
    from tinyzoo.evaluate import model_source, tasks

    sources = model_source.expand(list(models), snapshots=snapshots)
    options = options_for(sources[0], data_dir=data_dir, split=split, views=views, combine=combine, crop=crop, limit=limit,
                          batch_rows=batch_rows, device=device, cache_dir=cache_dir)
    out = Path(out_dir) if out_dir else tasks.default_ensemble_out(sources, method, split)
    record, combined = tasks.ensemble(sources, options, out, method=method, fallback=fallback, size=size, submission=submission)
    if as_json:
        print_json(record)
        return
    print_table([[m["model"], percent(m.get("top1"))] for m in record["members"]], ["member", "top-1"])
    click.echo("")
    if "top1_by_size" in record:
        print_table([[n, percent(a), "<- best" if n == record["size"] else ""] for n, a in enumerate(record["top1_by_size"], 1)],
                    ["size", "top-1", ""])
        click.echo("")
    rows = [["method", method], ["images", record["images"]]]
    if method == "vote":
        rows.append(["fallback", f"{record['fallback']} (decided {record['fallback_images']} images)"])
    else:
        rows.append(["size", f"{record['size']} of {len(record['members'])}"])
    if combined.labelled:
        rows += [["top-1", percent(record["top1"])], ["top-5", percent(record["top5"])]]
    rows.append(["metrics", str(out / "metrics.json")])
    if submission:
        rows.append(["submission", f"{submission} ({record['submission_lines']} lines)"])
    print_table(rows, ["", "ensemble"])


@click.command("predict")
@click.argument("model")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--topk", default=5, show_default=True, type=click.IntRange(min=1), help="How many classes to show per image.")
@click.option("--tta", "views", default="center", show_default=True, type=click.Choice(VIEW_SETS), help="Test-time views.")
@click.option("--combine", default="softmax", show_default=True, type=click.Choice(COMBINATIONS), help="How the views' scores are combined.")
@click.option("--crop", type=click.IntRange(min=1), help=CROP_HELP)
@click.option("--device", default=None, help="cpu, cuda or cuda:N [default: cuda when available].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one entry per image.")
def predict_command(model, images, topk, views, combine, crop, device, as_json):
    """The top classes of MODEL for each IMAGE, with their probabilities.

    \b
    MODEL: an adapted-model directory, a run directory (its best/) or a Hub id ORG/NAME.
    Images that are not 64x64 are resized to 64x64 first (bicubic), as the dataset cache does.
    Class names come from the model's config.json (the words.txt names it was adapted with).
    """
    from tinyzoo.evaluate import model_source, tasks

    results = tasks.predict_images(model_source.resolve(model), list(images), topk=topk, views=views, combine=combine, crop=crop, device=device)
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
    from tinyzoo.evaluate import analysis, model_source, tasks

    if split == "test":
        raise click.UsageError("the test split has no labels to analyse errors against; use --split val (or train)")
    source = model_source.resolve(model)
    options = options_for(source, data_dir=data_dir, split=split, views=views, combine=combine, crop=crop, limit=limit,
                          batch_rows=batch_rows, device=device, cache_dir=cache_dir)
    data_out = tasks.analyze(source, options, Path(out_dir), before=before, before_weights=before_weights, misclassified=misclassified)
    if as_json:
        print_json(data_out)
        return
    click.echo(f"{source.argument} on {split} ({data_out['images']} images, {views}/{combine}): top-1 {percent(data_out['top1'])}, top-5 {percent(data_out['top5'])}\n")
    rows = [[analysis.short_name(r["name"]), r["wnid"], f"{r['errors']}/{r['images']}", f"{100 * r['error_rate']:.1f}%", r["distinct_wrong"],
             ", ".join(f"{analysis.short_name(c['name'])} ({c['count']})" for c in r["confused_with"])] for r in data_out["class_errors"][:10]]
    print_table(rows, ["worst classes", "wnid", "errors", "error", "distinct wrong", "most often taken for"])
    if data_out["confused_pairs"]:
        click.echo("")
        print_table([[analysis.short_name(p["true_name"]), analysis.short_name(p["predicted_name"]), p["count"]] for p in data_out["confused_pairs"][:10]],
                    ["true class", "predicted as", "images"])
    click.echo(f"\nwrote {Path(out_dir) / 'index.html'} ({', '.join(sorted(data_out['files'].values()))})")


COMMANDS = [eval_command, ensemble_command, predict_command, analyze_command]
