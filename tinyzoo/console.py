"""Terminal output shared by every command: tables, JSON, progress bars and one-line errors."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click

from tinyzoo.errors import TinyzooError, one_line


class CommandError(click.ClickException):
    """A one-line ``Error: ...`` and an exit code, for any user error."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def as_command_error(exc: TinyzooError) -> CommandError:
    return CommandError(one_line(exc), getattr(exc, "exit_code", 1))


class TinyzooGroup(click.Group):
    """A click group whose commands turn :class:`TinyzooError` into a one-line error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TinyzooError as exc:
            raise as_command_error(exc) from None


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout: always valid JSON, so NaN and infinity (which JSON has not)
    are printed as null, and one warning line on stderr says how many were."""
    replaced: list[int] = [0]
    text = json.dumps(finite_json(data, replaced), indent=2, sort_keys=False, default=str, allow_nan=False)
    click.echo(text)
    if replaced[0]:
        from tinyzoo.logs import logger

        logger.warning(f"{replaced[0]} value(s) were NaN or infinite, which JSON cannot hold; they are printed as null")


def finite_json(data: Any, replaced: list[int]) -> Any:
    """``data`` with every NaN or infinite float replaced by None (counted in ``replaced[0]``)."""
    if isinstance(data, float) and not math.isfinite(data):
        replaced[0] += 1
        return None
    if isinstance(data, dict):
        return {key: finite_json(value, replaced) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(value, replaced) for value in data]
    return data


def _scaled(n: int | None, units: tuple[str, str, str], last: str) -> str:
    """``n`` in thousands, millions or billions with one decimal (``units``), else ``last``; '-' for None."""
    if n is None:
        return "-"
    for unit, size in zip(units, (1e9, 1e6, 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return last.format(n)


def format_count(n: int | None) -> str:
    """11689512 -> '11.7M'."""
    return _scaled(n, ("G", "M", "k"), "{}")


def format_size(n: int | None) -> str:
    """46807448 -> '46.8 MB'."""
    return _scaled(n, (" GB", " MB", " kB"), "{} B")


def percent(value: float | None, *, scale: float = 100.0, missing: str = "-") -> str:
    """0.7501 -> '75.01%' (``scale=1`` for a value already in percent); ``missing`` for None."""
    return missing if value is None else f"{value * scale:.2f}%"


def print_table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> None:
    """Columns padded to their widest cell; the last column is left ragged."""
    rows = [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    click.echo(line(headers))
    click.echo(line(["-" * w for w in widths]))
    for row in rows:
        click.echo(line(row))


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", leave: bool = True, **options):
    """A tqdm progress bar on stderr, silent when stderr is not a terminal and TINYZOO_PROGRESS is unset.

    ``options`` go to tqdm as they are (``unit_scale=True, unit_divisor=1024`` for bytes, ``initial``).
    """
    import os

    from tqdm.auto import tqdm

    force = os.environ.get("TINYZOO_PROGRESS")
    disable = not sys.stderr.isatty() if force is None else force in ("0", "")
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable, file=sys.stderr, dynamic_ncols=True, **options)
