"""Errors tinyzoo raises for bad input: each carries one line that says what to do."""

from __future__ import annotations

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


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Levenshtein distance (insertions, deletions, substitutions); past ``limit`` it stops at ``limit + 1``."""
    if abs(len(a) - len(b)) > (limit if limit is not None else len(a) + len(b)):
        return (limit or 0) + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if limit is not None and min(row) > limit:
            return limit + 1
        previous = row
    return previous[-1]


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def close_names(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``known`` that ``name`` may have meant, the likeliest first.

    First the names that start with ``name`` (three characters or more: ``vit_base`` finds
    ``vit_base_patch16_224``), shortest first; then those within a third of ``name``'s length
    in edits (Levenshtein distance, at least one edit allowed), fewest edits first. Ties go to
    the longer common prefix, then the shorter name. Case is ignored.
    """
    wanted = name.lower()
    limit = max(1, len(wanted) // 3)
    ranked = []
    for candidate in set(known):
        other = candidate.lower()
        distance = 0 if len(wanted) >= 3 and other.startswith(wanted) else edit_distance(wanted, other, limit)
        if distance <= limit:
            ranked.append((distance, -common_prefix(wanted, other), len(candidate), candidate))
    return [candidate for *_, candidate in sorted(ranked)[:n]]


class TinyzooError(Exception):
    """A user-facing error: its message is one line naming the file, field or name at fault."""

    exit_code = 1


class UnknownNameError(TinyzooError, KeyError):
    """A name that no plugin registered."""

    exit_code = 2

    def __init__(self, kind: str, name: str, known: Iterable[str], *, listing: str | None = None, prefix: str = ""):
        """``listing`` says where the known names are shown, for when none is close to ``name``;
        ``prefix`` is written in front of ``name`` and of every suggestion (``timm:``)."""
        self.kind, self.name = kind, prefix + name
        close = [prefix + c for c in close_names(name, known)]
        hint = f"; did you mean: {', '.join(close)}?" if close else (f"; {listing}" if listing else "")
        super().__init__(f"unknown {kind} {prefix + name!r}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DuplicateNameError(TinyzooError):
    """Two plugins registered the same name."""

    def __init__(self, kind: str, name: str, first: str, second: str):
        super().__init__(
            f"{kind} {name!r} is registered by both plugin {first!r} and plugin {second!r}"
        )
