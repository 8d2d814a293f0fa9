"""Errors tinyzoo raises for bad input: each carries one line that says what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def one_line(exc: BaseException | str, limit: int | None = None, *, typed: bool = False) -> str:
    """``exc``'s message on one line (whitespace collapsed), cut to ``limit`` characters;
    ``typed`` puts the exception's type in front (``OSError: ...``)."""
    text = " ".join(str(exc).split())
    if limit is not None:
        text = text[:limit]
    if typed and isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text


class TinyzooError(Exception):
    """A user-facing error: its message is one line naming the file, field or name at fault."""

    exit_code = 1


class UnknownNameError(TinyzooError, KeyError):
    """A name that no plugin registered."""

    exit_code = 2

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name = kind, name
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DuplicateNameError(TinyzooError):
    """Two plugins registered the same name."""

    def __init__(self, kind: str, name: str, first: str, second: str):
        super().__init__(
            f"{kind} {name!r} is registered by both plugin {first!r} and plugin {second!r}"
        )
