"""``tinyzoo list``, ``info`` and ``plugins``: reading the registry, never importing torch."""

from __future__ import annotations

import click

from tinyzoo.console import format_count, percent, print_json, print_table
from tinyzoo.registry import TIMM_PREFIX, get_registry


@click.command("list")
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of full specs.")
def list_command(pattern: str | None, as_json: bool) -> None:
    """List architectures, optionally those matching a shell-style PATTERN.

    `tinyzoo list 'resnet*'`; `tinyzoo list 'timm:vit_*'` lists timm's models (imports timm).
    """
    specs = get_registry().list_architectures(pattern)
    if as_json:
        print_json([s.to_dict() for s in specs])
        return
    if not specs:
        click.echo(nothing_listed(pattern), err=True)
        return
    rows = []
    for s in specs:
        best = s.best_result()
        rows.append([
            s.name, s.family, s.source, s.input_size, ",".join(s.stems), format_count(s.params),
            f"{percent(best.val_top1, scale=1)} ({best.report})" if best else "", s.weights or "none",
        ])
    print_table(rows, ["name", "family", "source", "input", "stems", "params", "best val top-1", "weights"])


def nothing_listed(pattern: str | None) -> str:
    """What `tinyzoo list` says when nothing matches: for a plain pattern, the same pattern among timm's models."""
    if not pattern:
        return "no architectures registered (see `tinyzoo plugins`)"
    if pattern.startswith(TIMM_PREFIX):
        return f"no timm model matches {pattern[len(TIMM_PREFIX):]!r}"
    return f"no architecture matches {pattern!r}; for timm's models: tinyzoo list '{TIMM_PREFIX}{pattern}'"


@click.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the spec as JSON.")
def info_command(name: str, as_json: bool) -> None:
    """Show everything tinyzoo knows about architecture NAME."""
    spec = get_registry().architecture(name)
    if as_json:
        print_json(spec.to_dict())
        return
    fields = [
        ("name", spec.name), ("family", spec.family), ("source", spec.source),
        ("weights", spec.weights or "none (trained from scratch)"),
        ("input size", f"{spec.input_size}x{spec.input_size}"), ("classes", spec.num_classes),
        ("stems", ", ".join(spec.stems)),
        ("parameters", f"{spec.params:,}" if spec.params else "unknown"),
        ("first conv", spec.first_conv), ("classifier", spec.classifier),
        ("aux classifiers", ", ".join(spec.aux_classifiers) or None),
        ("options", ", ".join(f"{k} ({v})" for k, v in spec.options.items()) or None),
        ("report", spec.report), ("plugin", spec.plugin), ("builder", spec.builder),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        if value is not None:
            click.echo(f"{key.ljust(width)}  {value}")
    if spec.description:
        click.echo(f"\n{spec.description}")
    if spec.results:
        click.echo("\nTiny ImageNet results reported:")
        rows = [[r.report, r.how, *(percent(v, scale=1, missing="") for v in (r.val_top1, r.val_top5, r.test_top1))] for r in spec.results]
        print_table(rows, ["report", "how", "val top-1", "val top-5", "test top-1"])


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include tinyzoo's built-in plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def plugins_command(show_all: bool, as_json: bool) -> None:
    """List installed plugins, their hooks, and any that failed to load or import a heavy package (torch...) when loading."""
    from tinyzoo.plugin_loader import get_host, warn
    from tinyzoo.registry import registry_of

    host = get_host()
    registry_of(host)  # registering can fail a plugin too
    records = [r for r in host.records.values() if show_all or not r.builtin or r.status == "failed"]
    for record in records:
        if record.heavy_imports:
            warn(heavy_warning(record))
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        click.echo("no third-party plugins installed (tinyzoo plugins --all shows the built-in ones)")
        return
    rows = [[r.name, r.package or "-", r.version or "-", r.status, ", ".join(r.heavy_imports) or "-",
             ", ".join(r.hooks) if r.status == "loaded" else (r.error or "")] for r in records]
    print_table(rows, ["name", "package", "version", "status", "heavy imports", "hooks / error"])


def heavy_warning(record) -> str:
    """The warning for a plugin that imports a heavy package when it loads (``tinyzoo plugins`` prints it)."""
    took = f" (its import took {record.import_seconds:.1f} s)" if record.import_seconds is not None else ""
    return (f"plugin {record.name!r} imports {', '.join(record.heavy_imports)} when it loads{took}, and every tinyzoo command "
            "loads every plugin, `tinyzoo list` included: import it inside the builder, adapter or command that uses it")


COMMANDS = [list_command, info_command, plugins_command]
