"""``tinyzoo data download|sample|info|prepare``: get Tiny ImageNet, write a sample, inspect a dataset, build its cache.

numpy, PIL and torch are imported inside the command bodies, so ``tinyzoo --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from tinyzoo.commands.data_option import DATA
from tinyzoo.console import TinyzooGroup, print_json, print_table
from tinyzoo.data.download import DEFAULT_DIR, TINY_IMAGENET_URL

SPLIT_CHOICES = ("train", "val", "test")


@click.group("data", cls=TinyzooGroup)
def data_group() -> None:
    """Tiny ImageNet data: download it, write a sample dataset, inspect a dataset, build its decoded cache.

    DIR is a folder in the tiny-imagenet-200 layout (wnids.txt, words.txt, train/, val/, test/),
    class folders (train/<class>/*.jpg, val/<class>/*.jpg), Parquet files, or hf:ORG/NAME[@REV].
    """


@data_group.command("download")
@click.argument("dir", required=False, default=DEFAULT_DIR, type=click.Path(file_okay=False, path_type=Path))
@click.option("--url", default=TINY_IMAGENET_URL, show_default=True, help="Where to get tiny-imagenet-200.zip (a mirror).")
@click.option("--sha256", help="The zip's SHA-256 (64 hex digits), for a mirror's own file  [default: tinyzoo's pinned checksum]")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Where to write the decoded cache  [default: see docs/data.md]")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0), help="Decoding processes (0: in this process).")
def download_command(dir: Path, url: str, sha256: str | None, cache_dir: str | None, workers: int) -> None:
    """Download Tiny ImageNet (about 237 MB) into DIR, check it, extract it, and build its decoded cache.

    \b
    DIR defaults to ./tiny-imagenet-200; train with `tinyzoo train NAME --data DIR`.
    An interrupted download resumes when the command runs again (DIR.zip.part keeps what
    arrived). The zip is checked against a pinned checksum (--sha256 for a mirror's own file);
    a mismatch deletes it. A DIR that already holds the dataset only gets its cache built.
    """
    from tinyzoo.data.download import PINNED_DIGEST, download

    got = download(dir, url=url, digest=sha256 or PINNED_DIGEST)
    if got.fetched:
        resumed = f", resumed at {got.resumed_from / 1e6:.1f} MB" if got.resumed_from else ""
        click.echo(f"downloaded {url} ({got.size / 1e6:.1f} MB{resumed}), {got.checked.upper()} checked; SHA-256 {got.sha256}")
        click.echo(f"extracted to {got.root}")
    else:
        click.echo(f"{got.root} already holds the dataset (wnids.txt); building its cache")
    prepare_splits(got.root, ("train", "val"), cache_dir=cache_dir, skip_bad=False, workers=workers, rebuild=False)


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
@click.argument("dir", type=DATA)
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
    click.echo(f"dataset  {report['root']} ({report['kind']})")
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
@click.argument("dir", type=DATA)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Where to write the cache  [default: see docs/data.md]")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable files and bad annotations, and report how many.")
@click.option("--split", "splits", multiple=True, type=click.Choice(SPLIT_CHOICES), help="Only this split (repeatable)  [default: all present]")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0), help="Decoding processes (0: in this process).")
@click.option("--rebuild", is_flag=True, help="Decode again even if the cache is up to date.")
def prepare_command(dir: str, cache_dir: str | None, skip_bad: bool, splits: tuple[str, ...], workers: int, rebuild: bool) -> None:
    """Decode DIR's splits once into the uint8 cache that training and evaluation read."""
    from tinyzoo.data.sources import open_dataset

    prepare_splits(dir, splits or open_dataset(dir, skip_bad=skip_bad).splits, cache_dir=cache_dir, skip_bad=skip_bad, workers=workers, rebuild=rebuild)


def prepare_splits(dir, splits, *, cache_dir, skip_bad: bool, workers: int, rebuild: bool) -> None:
    """Build (or confirm) the cache of each split, one line each; resized images and skipped files on stderr."""
    import warnings

    from tinyzoo.data.cache import open_split
    from tinyzoo.data.layout import ResizedImagesWarning

    for split in splits:
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
