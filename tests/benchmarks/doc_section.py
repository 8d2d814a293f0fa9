"""Writing one benchmark's section of docs/benchmarks.md without touching the others."""

from __future__ import annotations

import os
from pathlib import Path


def write_section(path: Path, text: str) -> None:
    """Replace the ``## ...`` section that ``text`` starts with (up to the next ``## ``), or append it."""
    heading = text.splitlines()[0]
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    start = old.find(heading + "\n")
    if start == -1:
        new = old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = old.find("\n## ", start + len(heading))
        new = old[:start] + text.rstrip("\n") + "\n" + (old[end:] if end != -1 else "")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
