"""``tinyzoo list``, ``info`` and ``plugins``: reading the registry, never importing torch."""

from __future__ import annotations

import click

from tinyzoo.console import format_count, print_json, print_table
from tinyzoo.registry import get_registry


def best_result(spec):
    """The highest validation top-1 a report gives for ``spec``, or None."""
    scored = [r for r in spec.results if r.val_top1 is not None]
    return max(scored, key=lambda r: r.val_top1) if scored else None


def no_match_message(pattern: str | None) -> str:
    """What ``tinyzoo list PATTERN`` says when nothing matches: where timm's models are."""
    if not pattern:
        return "no architectures registered (see `tinyzoo plugins`)"
    if pattern.startswith("timm:"):
        return f"no timm model matches {pattern[len('timm:'):]!r}"
    return f"no architecture matches {pattern!r}; timm's models are listed with a timm: prefix: tinyzoo list 'timm:{pattern}'"


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
        click.echo(no_match_message(pattern), err=True)
        return
    rows = []
    for s in specs:
        best = best_result(s)
        rows.append([
            s.name, s.family, s.source, s.input_size, ",".join(s.stems), format_count(s.params),
            f"{best.val_top1:.2f}% ({best.report})" if best else "", s.weights or "none",
        ])
    print_table(rows, ["name", "family", "source", "input", "stems", "params", "best val top-1", "weights"])


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
        rows = [[r.report, r.how, pct(r.val_top1), pct(r.val_top5), pct(r.test_top1)] for r in spec.results]
        print_table(rows, ["report", "how", "val top-1", "val top-5", "test top-1"])


def pct(value: float | None) -> str:
    return f"{value:.2f}%" if value is not None else ""


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include tinyzoo's built-in plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def plugins_command(show_all: bool, as_json: bool) -> None:
    """List installed plugins, their hooks, and any that failed to load."""
    from tinyzoo.plugin_loader import get_host

    host = get_host()
    host.registry  # registering can fail a plugin too
    records = [r for r in host.records.values() if show_all or not r.builtin or r.status == "failed"]
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        click.echo("no third-party plugins installed (tinyzoo plugins --all shows the built-in ones)")
        return
    rows = [[r.name, r.package or "-", r.version or "-", r.status, ", ".join(r.hooks) if r.status == "loaded" else (r.error or "")] for r in records]
    print_table(rows, ["name", "package", "version", "status", "hooks / error"])


COMMANDS = [list_command, info_command, plugins_command]
