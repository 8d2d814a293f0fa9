"""``tinyzoo data sample|info|prepare``: write a sample dataset, inspect a dataset, build its cache.

numpy, PIL and torch are imported inside the command bodies, so ``tinyzoo --help`` stays fast.
"""

from __future__ import annotations

import click

from tinyzoo.console import TinyzooGroup, print_json, print_table

SPLIT_CHOICES = ("train", "val", "test")


@click.group("data", cls=TinyzooGroup)
def data_group() -> None:
    """Tiny ImageNet data: write a sample dataset, inspect a dataset, build its decoded cache.

    DIR is a folder in the tiny-imagenet-200 layout (wnids.txt, words.txt, train/, val/, test/).
    """


@data_group.command("sample")
@click.argument("dir", type=click.Path(file_okay=False))
@click.option("--classes", default=10, show_default=True, type=click.IntRange(1, 1000), help="Number of classes (ImageNet wnids).")
@click.option("--per-class", default=100, show_default=True, type=click.IntRange(1), help="Training images per class.")
@click.option("--val-per-class", type=click.IntRange(0), default=None, help="Validation images per class  [default: per-class / 10]")
@click.option("--test-per-class", type=click.IntRange(0), default=None, help="Test images per class  [default: per-class / 10]")
@click.option("--seed", default=0, show_default=True, type=int, help="Chooses the classes and draws the images.")
def sample_command(dir: str, classes: int, per_class: int, val_per_class: int | None, test_per_class: int | None, seed: int) -> None:
    """Write a small learnable dataset in the exact Tiny ImageNet layout to DIR (new or empty)."""
    from tinyzoo.data.sample import write_sample

    info = write_sample(dir, classes=classes, per_class=per_class, val_per_class=val_per_class, test_per_class=test_per_class, seed=seed)
    c = info.counts
    click.echo(
        f"wrote {len(info.wnids)} classes to {info.root}: {c['train']} train, {c['val']} val, {c['test']} test images "
        f"({info.grayscale} grayscale)"
    )


@data_group.command("info")
@click.argument("dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Where the decoded cache is (see docs/data.md).")
@click.option("--skip-bad", is_flag=True, help="Leave out bad folders and annotation lines instead of failing, and list them.")
def info_command(dir: str, as_json: bool, cache_dir: str | None, skip_bad: bool) -> None:
    """Show DIR's classes, images per split and class, image modes and sizes, and cache state.

    Modes and sizes come from the cache's manifest when the cache is up to date, else from
    reading every file's header.
    """
    from tinyzoo.data.summary import dataset_summary

    report = dataset_summary(dir, cache_dir=cache_dir, skip_bad=skip_bad)
    splits = report["splits"]
    if as_json:
        print_json(report)
        return
    click.echo(f"dataset  {report['root']}")
    click.echo(f"classes  {report['classes']}")
    click.echo(f"cache    {report['cache_dir']}")
    click.echo("")
    rows = []
    for split, s in splits.items():
        rows.append([split, s["layout"], s["images"], counts_text(s["modes"]), counts_text(s["sizes"]), s["unreadable"] or "", cache_text(s["cache"])])
    print_table(rows, ["split", "layout", "images", "modes", "sizes", "unreadable", "cache"])
    click.echo("")
    labelled = [s for s in splits if s != "test"]
    print_table([[c["wnid"], c["name"].split(",")[0]] + [c[s] for s in labelled] for c in report["per_class"]], ["wnid", "name"] + labelled)
    for message in report["skipped"]:
        click.echo(f"skipped: {message}", err=True)


def counts_text(counts: dict) -> str:
    """{'RGB': 950, 'L': 50} -> 'RGB 950, L 50', largest first."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def cache_text(cache: dict) -> str:
    if cache["state"] == "missing":
        return "missing (tinyzoo data prepare)"
    size = f", {cache['bytes'] / 1e6:.1f} MB" if cache.get("bytes") else ""
    return f"{cache['state']} ({cache['images']} images{size})"


@data_group.command("prepare")
@click.argument("dir", type=click.Path(file_okay=False))
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Where to write the cache  [default: see docs/data.md]")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable files and bad annotations, and report how many.")
@click.option("--split", "splits", multiple=True, type=click.Choice(SPLIT_CHOICES), help="Only this split (repeatable)  [default: all present]")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0), help="Decoding processes (0: in this process).")
@click.option("--rebuild", is_flag=True, help="Decode again even if the cache is up to date.")
def prepare_command(dir: str, cache_dir: str | None, skip_bad: bool, splits: tuple[str, ...], workers: int, rebuild: bool) -> None:
    """Decode DIR's splits once into the uint8 cache that training and evaluation read."""
    import warnings

    from tinyzoo.data.cache import open_split
    from tinyzoo.data.layout import ResizedImagesWarning, TinyImageNet

    layout = TinyImageNet(dir, skip_bad=skip_bad)
    for split in splits or layout.splits:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResizedImagesWarning)
            decoded = open_split(dir, split, cache_dir=cache_dir, skip_bad=skip_bad, workers=workers, rebuild=rebuild)
        for warning in caught:
            click.echo(f"Warning: {warning.message}", err=True)
        for message in decoded.skipped:
            click.echo(f"skipped: {message}", err=True)
        how = f"decoded in {decoded.build_seconds:.1f} s" if decoded.built else "cache up to date"
        size = decoded.cache_path.stat().st_size / 1e6
        skipped = f", skipped {len(decoded.skipped)} bad file{'s' if len(decoded.skipped) != 1 else ''}" if decoded.skipped else ""
        click.echo(f"{split}: {len(decoded)} images, {how}{skipped} -> {decoded.cache_path} ({size:.1f} MB)")


COMMANDS = [data_group]
