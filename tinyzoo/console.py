"""Terminal output shared by every command: tables, JSON, progress bars and one-line errors."""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import click

from tinyzoo.errors import TinyzooError, one_line


class CommandError(click.ClickException):
    """A one-line ``Error: ...`` and an exit code, for any user error."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click's stub makes exit_code a ClassVar; click reads it per instance


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


PROGRESS_ENV = "TINYZOO_PROGRESS"  # 0: none; bar: a bar even in a log; lines: lines even on a terminal
PROGRESS_EVERY_ENV = "TINYZOO_PROGRESS_EVERY"  # seconds between two progress lines
PROGRESS_EVERY = 10.0


def progress_mode() -> str:
    """``bar`` (a tqdm bar), ``lines`` (a plain line every few seconds) or ``off``, for stderr now.

    ``TINYZOO_PROGRESS``: ``0`` (or empty) none, ``1``/``bar`` a bar, ``lines`` lines; unset or
    anything else: a bar when stderr is a terminal, lines when it is not (CI, a log file).
    """
    import os

    value = os.environ.get(PROGRESS_ENV)
    choice = None if value is None else value.strip().lower()
    if choice in ("0", ""):
        return "off"
    if choice in ("1", "bar", "lines"):
        return "lines" if choice == "lines" else "bar"
    return "bar" if sys.stderr.isatty() else "lines"


def progress_every() -> float:
    """Seconds between two progress lines: ``TINYZOO_PROGRESS_EVERY``, default 10."""
    import os

    try:
        return max(0.0, float(os.environ.get(PROGRESS_EVERY_ENV) or PROGRESS_EVERY))
    except ValueError:
        return PROGRESS_EVERY


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", leave: bool = True, **options):
    """Progress on stderr for a loop: a tqdm bar on a terminal, a plain line every
    :func:`progress_every` seconds elsewhere (see :func:`progress_mode`).

    Used as tqdm is (``update``, ``set_postfix``, iteration, a ``with`` block); ``options`` are
    tqdm's (``unit_scale=True, unit_divisor=1024`` for bytes, ``initial``, ``disable``).
    """
    from tqdm.auto import tqdm

    mode = "off" if options.pop("disable", False) else progress_mode()
    if mode == "lines":
        return ProgressLines(iterable, total=total, desc=desc, unit=unit, every=progress_every(), **options)
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=mode == "off", file=sys.stderr, dynamic_ncols=True,
                **options)


class ProgressLines:
    """What :func:`progress` gives when stderr is not a terminal: one line on stderr every
    ``every`` seconds while the loop runs (done/total, percent, rate, elapsed, ETA, the
    caller's postfix), and a last line at the end when any was printed; a short loop prints nothing.
    """

    LINE = "{desc}: {n_fmt}/{total_fmt}{sep}{unit} ({percentage:.0f}%), {rate_fmt}, {elapsed} elapsed, ETA {remaining}{postfix}"
    OPEN_LINE = "{desc}: {n_fmt}{sep}{unit}, {rate_fmt}, {elapsed} elapsed{postfix}"  # no total known

    def __init__(self, iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", every: float = PROGRESS_EVERY,
                 unit_scale: bool = False, unit_divisor: int = 1000, initial: int = 0, clock=time.monotonic, **_tqdm_only):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc or "progress", unit
        self.unit_scale, self.unit_divisor, self.every = unit_scale, unit_divisor, every
        self.n = self.initial = initial
        self.postfix = ""
        self.shown: tuple | None = None  # (n, postfix) of the last line printed
        self.clock = clock
        self.start = self.last = self.clock()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def __len__(self) -> int:
        return self.total if self.total is not None else len(self.iterable)

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, count: int = 1) -> None:
        self.n += count
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.emit(now)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **values) -> None:
        values = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def emit(self, now: float) -> None:
        """Print the line for ``now``."""
        from tqdm import tqdm

        elapsed = now - self.start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else None
        line = (self.LINE if self.total else self.OPEN_LINE).replace("{sep}", "" if self.unit_scale else " ")
        text = tqdm.format_meter(
            self.n, self.total or None, elapsed, prefix=self.desc, unit=self.unit, unit_scale=self.unit_scale,
            unit_divisor=self.unit_divisor, rate=rate, postfix=self.postfix or None, initial=self.initial, bar_format=line,
        )
        click.echo(re.sub(r"(?<=, ) +", "", text), err=True)  # tqdm pads short rates for its bar
        self.shown = (self.n, self.postfix)

    def close(self) -> None:
        """The last line, when the loop printed any and has moved since (so a log shows where it ended)."""
        if self.shown is not None and self.shown != (self.n, self.postfix):
            self.emit(self.clock())
