"""A non-editable install (a built wheel) carries the plugins and recipes under namespaced names."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import tomllib
from conftest import REPO

import tinyzoo


def test_wheel_carries_plugins_and_recipes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("tinyzoo", "plugins", "recipes"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(src)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = (tmp_path / "dist").glob("tinyzoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"tinyzoo", "tinyzoo_plugins", "tinyzoo_recipes"}  # never a bare `plugins`
    for path in (REPO / "plugins").rglob("*.py"):
        assert f"tinyzoo_plugins/{path.relative_to(REPO / 'plugins').as_posix()}" in names
    for path in (REPO / "recipes").rglob("*"):
        if path.is_file() and path.suffix in (".py", ".toml"):
            assert f"tinyzoo_recipes/{path.relative_to(REPO / 'recipes').as_posix()}" in names
    for path in (REPO / "tinyzoo").rglob("*.py"):
        assert f"tinyzoo/{path.relative_to(REPO / 'tinyzoo').as_posix()}" in names, path
    assert "tinyzoo/timm_coverage.json" in names  # the timm catalog lists stems from it

    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    version = next(line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines() if line.startswith("Version: "))
    assert version == f"Version: {tinyzoo.__version__}"  # pyproject reads it from tinyzoo.__version__, the one place
    assert "version" not in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["tinyzoo"]
    for name, module in declared.items():
        assert f"{name} = {module}" in text


def test_python_m_tinyzoo_beside_a_clone_says_the_clone_hides_the_install(tmp_path):
    """`python -m tinyzoo` run from the folder that holds a clone named tinyzoo/: one line, not an ImportError."""
    clone = tmp_path / "tinyzoo"
    clone.mkdir()
    (clone / "README.md").write_text("# tinyzoo\n")
    probe = subprocess.run([sys.executable, "-c", "import tinyzoo; print(tinyzoo.__file__)"], cwd=tmp_path, capture_output=True, text=True)
    if probe.stdout.strip() != "None":
        import pytest

        pytest.skip(f"this install is not shadowed by a folder in the working directory (tinyzoo is {probe.stdout.strip()})")
    result = subprocess.run([sys.executable, "-m", "tinyzoo", "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: the folder {clone} (no __init__.py: a clone of tinyzoo?) hides the installed tinyzoo from `python -m tinyzoo` "
        "run here; run it from another folder (e.g. inside the clone), or run the `tinyzoo` command\n"
    )
    inside = subprocess.run([sys.executable, "-m", "tinyzoo", "--version"], cwd=REPO, capture_output=True, text=True)  # the real clone
    assert inside.returncode == 0 and inside.stdout == f"tinyzoo, version {tinyzoo.__version__}\n"
