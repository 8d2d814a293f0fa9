"""``tinyzoo train``: run a named recipe (or continue a run) into a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from tinyzoo.commands.data_option import DATA, DATA_HELP
from tinyzoo.console import CommandError, print_json

SET_HELP = "Override a recipe field: key.path=value (a TOML literal), e.g. stages[1].optimizer.lr=0.01. Repeatable."


@click.command("train")
@click.argument("name", required=False)
@click.option("--data", type=DATA, help=f"{DATA_HELP} [default: the generated sample dataset].")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory to create (default runs/NAME).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Continue the run in this directory from its last checkpoint.")
@click.option("--device", help="auto (default: the recipe's run.device), cpu, cuda or cuda:N.")
@click.option("--epochs-scale", type=float, default=1.0, show_default=True, help="Multiply every stage's length (and its schedule) by this: 0.1 for a quick run.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the decoded dataset cache lives.")
@click.option("--no-feature-cache", is_flag=True, help="Always run the frozen backbone, even where its features could be cached.")
@click.option("--checkpoint-every-steps", type=int, help="Also write a checkpoint every N optimizer steps within an epoch.")
@click.option("--threads", type=int, help="CPU threads for torch (default: the cores idle at the start; $TINYZOO_THREADS).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON.")
def train_command(name, data, out, sets, resume, device, epochs_scale, cache_dir, no_feature_cache, checkpoint_every_steps, threads, as_json):
    """Train recipe NAME on the dataset at --data, writing a run directory.

    Without --data it trains on the generated sample dataset (written once to the cache
    folder), so `tinyzoo train quickstart` runs anywhere, offline.

    The run directory holds the resolved recipe, metrics.jsonl, checkpoints, the best
    snapshots, best/ (an adapted model for `tinyzoo eval`) and PNG plots. Ctrl-C writes a
    checkpoint and stops; `tinyzoo train --resume RUN` continues it. Under
    `torchrun --nproc_per_node N -m tinyzoo train ...` it trains data-parallel.

    \b
    tinyzoo train quickstart --data sample/
    tinyzoo train kim2016-resnet18 --data tiny-imagenet-200 --set stages[0].batch_size=128
    tinyzoo train --resume runs/kim2016-resnet18
    """
    from tinyzoo.distributed import from_environment

    options = {"data": data, "cache_dir": cache_dir, "device": device, "feature_cache": "off" if no_feature_cache else None,
               "checkpoint_every_steps": checkpoint_every_steps, "threads": threads}
    if resume is not None:
        if name or sets or epochs_scale != 1.0:
            raise click.UsageError("--resume continues a run exactly as it started: give no NAME, --set or --epochs-scale")
        recipe, settings = resumed_settings(resume, options)
    else:
        recipe, settings = fresh_settings(name, sets, out, epochs_scale, options)
    main = from_environment().is_main
    settings.progress = main
    settings.log = (lambda msg: click.echo(msg, err=True)) if main else (lambda msg: None)
    summary = run_training(recipe, settings, resume is not None)
    if not main:
        return
    if as_json:
        print_json(summary)
        return
    click.echo(f"run: {summary['run']}")
    click.echo(f"trained {summary['epochs']:g} epochs ({summary['steps']} steps) in {summary['train_seconds']:.1f}s")
    best = summary["best_val_top1"]
    if best is not None:
        click.echo(f"validation top-1: best {100 * best:.2f}%, last {100 * summary['final_val_top1']:.2f}% (top-5 {100 * summary['final_val_top5']:.2f}%)")
    ev = recipe.evaluation
    click.echo(f"best model: {summary['best']}")
    click.echo(f"evaluate it with the recipe's views: tinyzoo eval {summary['run']} --data {settings.data} --tta {ev.views} --combine {ev.combine}")


def resumed_settings(run: Path, options: dict):
    """The run's recipe and the settings it started with; options given on the command line win."""
    from tinyzoo.cpu_threads import environment_threads
    from tinyzoo.recipe import load_recipe
    from tinyzoo.train.trainer import TrainSettings

    settings = TrainSettings.for_resume(run, **options)
    settings.threads = settings.threads or environment_threads()
    return load_recipe(run / "recipe.toml"), settings


def fresh_settings(name: str | None, sets, out: Path | None, epochs_scale: float, options: dict):
    """The recipe NAME with its --set overrides, and settings for a new run (the sample dataset without --data)."""
    from tinyzoo.cpu_threads import environment_threads
    from tinyzoo.recipe import load_recipe
    from tinyzoo.train.rundir import RunDir, default_run_dir
    from tinyzoo.train.trainer import TrainSettings

    if not name:
        raise click.UsageError("give a recipe NAME (see `tinyzoo recipes`) or --resume RUN")
    recipe, options = load_recipe(name, sets), dict(options)
    out = out or default_run_dir(recipe.name)
    RunDir(out).check_new()  # before anything is read or written: a run goes into a new or empty folder only
    if options["data"] is None:
        from tinyzoo.data.sample import ensure_default_sample

        options["data"] = ensure_default_sample()
        click.echo(f"no --data: training on the generated sample dataset in {options['data']} (10 classes; give --data DIR for real data)", err=True)
    options["feature_cache"] = options["feature_cache"] or "auto"
    options["threads"] = options["threads"] or environment_threads()
    return recipe, TrainSettings(out=out, epochs_scale=epochs_scale, **options)


def run_training(recipe, settings, resume: bool) -> dict:
    """Train; a stop (Ctrl-C, SIGTERM) becomes exit status 130 with the command that continues the run."""
    from tinyzoo.train.trainer import StopRequested, Trainer

    out = settings.out
    try:
        return Trainer(recipe, settings).run(resume=resume)
    except StopRequested:
        raise CommandError(f"stopped; a checkpoint is in {out}/checkpoints (continue with: tinyzoo train --resume {out})", 130) from None
    except KeyboardInterrupt:
        raise CommandError(f"interrupted; continue from the last checkpoint with: tinyzoo train --resume {out}", 130) from None


COMMANDS = [train_command]
