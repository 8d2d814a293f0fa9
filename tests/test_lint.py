"""The lint and type gate, run with the rest of the suite (so by CI's ``python -m pytest -q``).

- ruff on the code, tests, docs scripts and recipes, with ``[tool.ruff]`` of pyproject.toml;
- mypy on ``tinyzoo/`` with ``[tool.mypy]`` (run from the repository root, which is where it
  reads that table; its cache goes to ``.mypy_cache/`` there, which ignores itself in git);
- no function in ``tinyzoo/`` longer than 60 lines, docstring included.

Both tools run as ``sys.executable -m ...``, so they are the ones the test extra installs.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from conftest import REPO

RUFF_PATHS = ("tinyzoo", "plugins", "tests", "docs", "recipes")
MAX_FUNCTION_LINES = 60


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean():
    result = _run("ruff", "check", *RUFF_PATHS)
    assert result.returncode == 0, f"ruff check {' '.join(RUFF_PATHS)}:\n{result.stdout}{result.stderr}"


@pytest.mark.slow  # 17 s from a cold cache on 2 cores (CI runs cold), under 1 s warm
def test_mypy_is_clean():
    result = _run("mypy")
    assert result.returncode == 0, f"mypy (files and settings: [tool.mypy] in pyproject.toml):\n{result.stdout}{result.stderr}"


def long_functions(folder, limit: int = MAX_FUNCTION_LINES, *, root=REPO) -> list[str]:
    """``path:line name (N lines)`` (path relative to ``root``) for every function or method under
    ``folder`` longer than ``limit`` lines, counted from its ``def`` to its last line, docstring included."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_tinyzoo_is_over_60_lines():
    assert long_functions(REPO / "tinyzoo") == []


def test_long_functions_counts_from_def_to_last_line(tmp_path):
    # The counter itself: a 60-line function passes, a 61-line one (async, in a class) is named.
    body = "\n".join(f"        x{i} = {i}" for i in range(59))
    (tmp_path / "long.py").write_text(
        f"class Holder:\n    def fits(self):\n{body}\n\n    async def too_long(self):\n{body}\n        return x0\n"
    )
    assert long_functions(tmp_path, root=tmp_path) == ["long.py:63 too_long (61 lines)"]
