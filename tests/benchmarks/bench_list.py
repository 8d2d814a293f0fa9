"""Cold `tinyzoo list` against a cold `import timm; timm.list_models()`, in the same run.

Run: python tests/benchmarks/bench_list.py [--repeat 5] [--write docs/benchmarks.md]
Each measurement is a fresh interpreter (cold imports, warm disk cache); the median counts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from doc_section import write_section

COMMANDS = {
    "tinyzoo list": [sys.executable, "-m", "tinyzoo", "list"],
    "import timm; timm.list_models()": [sys.executable, "-c", "import timm; timm.list_models()"],
}


def time_command(argv: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path, help="update the '## Listing' section of this markdown file")
    args = parser.parse_args()
    for argv in COMMANDS.values():  # warm the disk cache once
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    medians = {name: statistics.median(time_command(argv, args.repeat)) for name, argv in COMMANDS.items()}
    ratio = medians["import timm; timm.list_models()"] / medians["tinyzoo list"]
    load = os.getloadavg()[0]
    lines = [
        "## Listing",
        "",
        "`python tests/benchmarks/bench_list.py` — median of "
        f"{args.repeat} cold runs each (fresh interpreter), load average {load:.2f} at the start.",
        "",
        "| command | median wall time |",
        "|---|---|",
        *[f"| `{name}` | {seconds * 1000:.0f} ms |" for name, seconds in medians.items()],
        "",
        f"`tinyzoo list` is **{ratio:.1f}x** faster than listing timm's models (goal: at least 10x).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, text)


if __name__ == "__main__":
    main()
