"""``tinyzoo recipes``, ``recipes show`` and ``recipes check``: reading recipes (only ``check`` imports torch,
to build the augmentation pipelines it checks)."""

from __future__ import annotations

from typing import Any

import click

from tinyzoo.console import TinyzooGroup, print_json, print_table
from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.registry import get_registry

SET_HELP = "Override a field: key.path=value (a TOML literal), e.g. stages[1].optimizer.lr=0.01. Repeatable."


def recipe_summary(name: str) -> dict:
    """One listing row as data: name, arch, stages, report, result; ``error`` when the recipe does not validate."""
    from tinyzoo.recipe import load_recipe

    spec = get_registry().recipe(name)
    row: dict[str, Any] = {"name": name, "description": spec.description, "plugin": spec.plugin, "path": spec.path}
    try:
        recipe = load_recipe(name)
    except TinyzooError as exc:
        return {**row, "error": str(exc)}
    row.update(
        arch=recipe.model.arch,
        stem=recipe.model.stem,
        stages=[{"name": s.name, "train": s.train, "epochs": s.epochs, "iterations": s.iterations} for s in recipe.stages],
        report=recipe.report,
        result=recipe.result,
        description=recipe.description or spec.description,
    )
    return row


def stage_text(stage: dict) -> str:
    length = f"{stage['epochs']:g}ep" if stage["epochs"] is not None else f"{stage['iterations']}it"
    return f"{stage['name']}:{length}"


def result_text(result: dict) -> str:
    return ", ".join(f"{k} {v:g}%" for k, v in result.items())


@click.group("recipes", cls=TinyzooGroup, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def recipes_group(ctx: click.Context, as_json: bool) -> None:
    """List the named training recipes: architecture, stages, report and the result to match.

    `tinyzoo recipes show NAME` prints one fully resolved; `tinyzoo train NAME --data DIR` runs it.
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = [recipe_summary(name) for name in sorted(get_registry().recipes)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no recipes registered (see `tinyzoo plugins --all`)", err=True)
        return
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["name"], "", "", "", f"invalid: {r['error']}"])
        else:
            table.append([r["name"], r["arch"], " ".join(stage_text(s) for s in r["stages"]), r["report"], result_text(r["result"])])
    print_table(table, ["name", "arch", "stages", "report", "result to match"])


@recipes_group.command("show")
@click.argument("name")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def show_command(name: str, sets: tuple[str, ...]) -> None:
    """Print recipe NAME (a registered name or a .toml file) fully resolved, as TOML."""
    from tinyzoo.recipe import load_recipe, recipe_to_toml

    click.echo(recipe_to_toml(load_recipe(name, sets)), nl=False)


@recipes_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def check_command(files: tuple[str, ...], sets: tuple[str, ...]) -> None:
    """Validate recipe FILES: every field, and every name against what is installed
    (architecture, stems, options, augmentation keys); the first problem of each is printed on one line."""
    from tinyzoo.recipe import load_recipe
    from tinyzoo.recipe_check import check_recipe

    failed = 0
    for path in files:
        try:
            recipe = load_recipe(path, sets)
            check_recipe(recipe, path)
        except TinyzooError as exc:
            failed += 1
            click.echo(f"Error: {one_line(exc)}", err=True)
            continue
        click.echo(f"{path}: ok ({recipe.name}: {recipe.model.arch}, {len(recipe.stages)} stage{'s' if len(recipe.stages) != 1 else ''})")
    if failed:
        raise click.exceptions.Exit(1)


COMMANDS = [recipes_group]
