"""Make the pictures of docs/evaluation.md from the sample dataset.

    python docs/make_evaluation_figures.py [--work DIR] [--run RUN] [--device cpu]

Writes the sample dataset (`tinyzoo data sample`: 10 classes, 100 training and 10
validation images each) into --work, trains the quickstart recipe on it keeping its 10 best
snapshots (about two minutes on an idle 2-core CPU), or reuses --run, and draws into
docs/img/evaluation/:

- views.png: the 12 views of `12crop` for one validation image, as the network gets them;
- ensemble_size.png: softmax ensembles of the snapshots, top-1 against size (Milani);
- misclassified.png, confusion.png: `tinyzoo analyze` of the run's best model;
- filters_before_after.png: the first-layer filters at initialisation (the trainer's seed)
  and after training (Zhai's Figure 7).

Every PNG is checked to stay under 200 KB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "img" / "evaluation"
MAX_BYTES = 200_000
SNAPSHOTS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="working folder for the sample and the run (default: a temporary one)")
    parser.add_argument("--run", type=Path, help="an existing quickstart run directory (its run.json names its data)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the trainer's choice)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tinyzoo-eval-figures-"))
    work.mkdir(parents=True, exist_ok=True)
    sample = work / "sample"
    if args.run is not None and (args.run / "run.json").is_file():
        sample = Path(json.loads((args.run / "run.json").read_text())["data"])  # the data the run trained on
    if not (sample / "wnids.txt").is_file():
        from tinyzoo.data.sample import write_sample

        write_sample(sample)
    run = args.run or work / "quickstart"
    if not (run / "best" / "config.json").is_file():
        command = [sys.executable, "-m", "tinyzoo", "train", "quickstart", "--data", str(sample), "--out", str(run),
                   "--set", f"run.keep_snapshots={SNAPSHOTS}"] + (["--device", args.device] if args.device else [])
        print("running:", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    draw_views(sample)
    draw_ensemble(sample, run, args.device)
    draw_analysis(sample, run, work, args.device)
    for png in sorted(OUT.glob("*.png")):
        size = png.stat().st_size
        print(f"{png.relative_to(DOCS)}: {size / 1000:.0f} KB")
        if size > MAX_BYTES:
            raise SystemExit(f"{png} is {size} bytes; keep documentation pictures under {MAX_BYTES}")


def draw_views(sample: Path, index: int = 3, crop: int = 56) -> None:
    """views.png: every view of 12crop for one validation image, with its box."""
    import numpy as np
    import torch

    from tinyzoo.data.cache import open_split
    from tinyzoo.evaluate import views
    from tinyzoo.evaluate.figures import new_figure, save_figure

    split = open_split(sample, "val")
    image = torch.from_numpy(np.array(split.images[index : index + 1])).permute(0, 3, 1, 2)
    batch = views.twelve_crop(image, crop)
    boxes = views.boxes("12crop", 64, 64, crop)
    fig, axes = new_figure(9.6, 3.9, 2, 7)
    axes[0, 0].imshow(split.images[index], interpolation="nearest")
    axes[0, 0].set_title("image 64x64", fontsize=8)
    axes[1, 0].axis("off")
    cells = [axes[r, c] for r in range(2) for c in range(1, 7)]
    for ax, view, box in zip(cells, batch, boxes):
        ax.imshow(view.permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy(), interpolation="nearest")
        where = "resized 64->56" if box.resized else f"at ({box.top},{box.left})"
        ax.set_title(f"{box.name.replace(' mirrored', ' (m)')}\n{where}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("12crop views in output order: (top, left) of each 56x56 box; (m) = mirrored", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.08, hspace=0.45)
    save_figure(fig, OUT / "views.png")


def draw_ensemble(sample: Path, run: Path, device) -> None:
    """ensemble_size.png: Milani's greedy size selection over the run's snapshots."""
    from tinyzoo.data.cache import open_split
    from tinyzoo.evaluate import ensemble, model_source
    from tinyzoo.evaluate.predictions import predict_split

    val = open_split(sample, "val")
    members = []
    for source in model_source.expand([str(run)], snapshots=True):
        net = model_source.load(source)  # preprocessed as its config.json says
        members.append(predict_split(net, val, views="10crop", combine="softmax", device=device))
    selection = ensemble.greedy_size([m.probs for m in members], members[0].labels)
    ensemble.plot_size_curve(selection, OUT / "ensemble_size.png", title="quickstart snapshots on the sample (10crop / softmax)")
    print(f"ensemble: top-1 by size {[round(100 * a, 1) for a in selection.top1_by_size]}, best size {selection.best_size}")


def draw_analysis(sample: Path, run: Path, work: Path, device) -> None:
    """misclassified.png, confusion.png and filters_before_after.png of the run's best model."""
    import torch

    import tinyzoo.adapt
    from tinyzoo.data.cache import open_split
    from tinyzoo.evaluate import analysis, model_source
    from tinyzoo.evaluate.predictions import predict_split
    from tinyzoo.recipe import load_recipe

    source = model_source.resolve(str(run))
    net = model_source.load(source)
    val = open_split(sample, "val")
    predictions = predict_split(net, val, views="10crop", combine="expsum", device=device, source="quickstart")
    recipe = load_recipe(run / "recipe.toml")
    # the trainer seeds torch with run.seed right before it creates the model: the same initial filters
    torch.manual_seed(recipe.run.seed)
    model = recipe.model
    initial = tinyzoo.adapt.create(model.arch, stem=model.stem, classes=model.classes, weights=model.weights, **dict(model.options))
    report = work / "analysis"
    epochs = sum(stage.epochs or 0 for stage in recipe.stages)
    analysis.write_report(report, predictions, val.images, filters=analysis.first_conv_weight(net),
                          before_filters=analysis.first_conv_weight(initial), before_label=f"initialisation (seed {recipe.run.seed})",
                          after_label=f"after {epochs:g} epochs", misclassified=12)
    for name in ("misclassified.png", "confusion.png", "filters_before_after.png"):
        shutil.copy(report / name, OUT / name)
    print(f"analysis of the best model: top-1 {100 * predictions.summary()['top1']:.1f}% (10crop / expsum); full report in {report}")


if __name__ == "__main__":
    main()
