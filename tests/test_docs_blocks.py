"""The documentation's code blocks: every one is marked as run or not, the marked ones run, and
the command synopses match the command line.

A bash or python block in README.md or docs/*.md carries an HTML comment on the line before
its fence: ``<!-- runs: offline -->`` (run here: bash blocks line by line in a temporary
folder with the installed ``tinyzoo``, python blocks with this interpreter, all offline),
``<!-- runs: tests/test_x.py -->`` (a test of its own runs it; that file must read the page),
or ``<!-- not run: WHY -->``; ``<!-- not run: signatures -->`` blocks are checked against
``inspect.signature`` instead. Other blocks (diagrams, outputs, layouts) say what they are in
their fence (``text``, ``json``, ``toml``, ``yaml``) and need no mark; the synopses among them
(lines starting ``tinyzoo ``) are checked against click's own options.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CODE_LANGUAGES = ("bash", "sh", "shell", "console", "python", "py")
TEXT_LANGUAGES = ("text", "json", "toml", "yaml")
MARK = re.compile(r"<!--\s*(runs:\s*(?P<runs>[^>]*?)|not run:\s*(?P<why>[^>]*?))\s*-->")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    runs: str | None  # "offline", or the test file that runs it
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page`` with its language and the mark on the line before it."""
    lines = page.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(```+)(\S*)", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(fence.group(1)))
        before = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip() and not lines[k].startswith("<!-- setup:")), "")
        mark = MARK.fullmatch(before.strip())
        found.append(Block(page, i + 1, fence.group(2), "\n".join(lines[i + 1:end]) + "\n",
                           mark and mark.group("runs"), mark and mark.group("why")))
        i = end + 1
    return found


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]


def runnable(name: str) -> list[Block]:
    """The blocks marked ``runs: offline``."""
    return [b for b in ALL_BLOCKS if b.runs == name]


# -- marks ---------------------------------------------------------------------------------------
def test_every_code_block_says_whether_it_runs():
    unmarked = [b.where for b in ALL_BLOCKS if b.language in CODE_LANGUAGES and not (b.runs or b.not_run)]
    assert unmarked == [], "mark these blocks <!-- runs: offline --> or <!-- not run: WHY -->"
    untyped = [b.where for b in ALL_BLOCKS if b.language not in CODE_LANGUAGES + TEXT_LANGUAGES]
    assert untyped == [], f"give these fences a language: one of {CODE_LANGUAGES + TEXT_LANGUAGES}"
    for block in ALL_BLOCKS:
        if block.runs and block.runs != "offline":
            runner = REPO / block.runs
            assert runner.is_file(), f"{block.where}: {block.runs} does not exist"
            assert block.page.name in runner.read_text(), f"{block.where}: {block.runs} never reads {block.page.name}"
        if block.runs or block.not_run:
            assert block.language in CODE_LANGUAGES, f"{block.where}: a {block.language or 'plain'} block is not code to run"


# -- synopses ------------------------------------------------------------------------------------
def cli_commands() -> dict[str, click.Command]:
    """Every command of tinyzoo's own command line by its path (``data download``), groups included."""
    from tinyzoo.cli import cli

    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: str) -> None:
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(cli, "")
    return found


def synopses(text: str) -> list[str]:
    """The synopses in a block: lines starting ``tinyzoo ``, with their indented continuation lines."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("tinyzoo "):
            out.append(line)
        elif out and line.startswith(" ") and line.strip():
            out[-1] += " " + line.strip()
    return out


def parse_synopsis(line: str, commands: dict) -> tuple[str, dict[str, tuple[int, str | None]]]:
    """``(command path, {option: (bracket depth, choices text)})`` of one synopsis line."""
    words = line.split()[1:]
    path = ""
    while words and f"{path} {words[0]}".strip() in commands:
        path = f"{path} {words.pop(0)}".strip()
    options, depth = {}, 0
    for k, word in enumerate(words):
        name = re.sub(r"[\[\]|.]", "", word)
        if name.startswith("--"):
            following = words[k + 1] if k + 1 < len(words) else ""
            choices = re.sub(r"[\[\]]", "", following.removesuffix("...")) if "|" in following.strip("[]|") else None
            options[name] = (depth + word.count("["), choices)  # brackets opened in front of it count
        depth += word.count("[") - word.count("]")
    return path, options


def click_options(command: click.Command) -> dict[str, click.Option]:
    return {opt: p for p in command.params if isinstance(p, click.Option) for opt in p.opts if opt.startswith("--") and opt != "--help"}


def cli_page_synopses() -> list[str]:
    """The synopses under docs/cli.md's "Every command and its options"."""
    page = REPO / "docs" / "cli.md"
    start = page.read_text()[:page.read_text().index("## Every command and its options")].count("\n") + 1
    block = next(b for b in blocks(page) if b.line > start)
    return synopses(block.code)


def test_cli_md_lists_every_command_with_exactly_its_options():
    commands = cli_commands()
    documented: dict[str, list[dict]] = {}
    for line in cli_page_synopses():
        path, options = parse_synopsis(line, commands)
        assert path in commands, f"docs/cli.md: {line!r} names no command"
        documented.setdefault(path, []).append(options)
    leaves = {p for p, c in commands.items() if p and (not isinstance(c, click.Group) or click_options(c))}
    assert sorted(documented) == sorted(leaves), "docs/cli.md: commands missing or extra"
    for path, forms in documented.items():
        actual = click_options(commands[path])
        named = set().union(*forms)
        assert named == set(actual), f"tinyzoo {path}: documented {sorted(named)}, the command has {sorted(actual)}"
        for option, param in actual.items():
            if param.required:
                assert all(form.get(option, (1,))[0] == 0 for form in forms), f"tinyzoo {path}: {option} is required: write it without brackets"
        always = set.intersection(*({o for o, (d, _) in form.items() if d == 0} for form in forms))
        assert {o for o in always if not actual[o].required} == set(), f"tinyzoo {path}: optional options shown without brackets"


def test_every_synopsis_in_the_docs_matches_the_command_line():
    """Synopses on the other pages (``text`` blocks) name real options, with the right choices, bracketed unless required."""
    commands = cli_commands()
    checked = 0
    for block in ALL_BLOCKS:
        lines = synopses(block.code) if block.language == "text" else []
        paths = [parse_synopsis(line, commands)[0] for line in lines]
        for line, path in zip(lines, paths):
            options = parse_synopsis(line, commands)[1]
            actual = click_options(commands[path])
            for option, (depth, choices) in options.items():
                assert option in actual, f"{block.where}: tinyzoo {path} has no {option}"
                param = actual[option]
                one_form = paths.count(path) == 1  # with several (train and train --resume), each form has its own
                assert not one_form or (depth == 0) <= param.required, f"{block.where}: {option} is optional: bracket it"
                assert depth == 0 or not param.required, f"{block.where}: {option} is required: no brackets"
                if choices and isinstance(param.type, click.Choice):  # in click's order; a page may leave out what is refused later
                    shown = choices.split("|")
                    assert shown == [c for c in param.type.choices if c in shown], f"{block.where}: {option} {choices}: not among {param.type.choices}"
            checked += 1
    assert checked >= len(cli_page_synopses())


# -- running the blocks marked `runs: offline` -----------------------------------------------------
def environment(workspace: Path) -> dict:
    """This interpreter's tools first on PATH; caches in the workspace; no network at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINYZOO_", "HF_"))}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        TINYZOO_CACHE_DIR=str(workspace / "cache"), TINYZOO_OFFLINE="1", TINYZOO_THREADS="1",
        HF_HOME=str(workspace / "hf"), HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9", TORCH_HOME=str(workspace / "torch"),
    )
    return env


def run_block(block: Block, workspace: Path) -> subprocess.CompletedProcess:
    """A bash block as one script (``set -e``), a python block with this interpreter, in ``workspace``."""
    if block.language in ("python", "py"):
        script = workspace.parent / f"{block.page.stem}-{block.line}.py"
        script.write_text(block.code)
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    return subprocess.run(argv, cwd=workspace, env=environment(workspace), capture_output=True, text=True, timeout=600)


QUICKSTART = next(b for b in runnable("offline") if b.page.name == "README.md" and b.language == "bash")
OTHERS = [b for b in runnable("offline") if b is not QUICKSTART]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder where the README's quickstart block ran, as a new user runs it: the other blocks run there after it."""
    folder = tmp_path_factory.mktemp("docs") / "work"
    folder.mkdir()
    return folder, run_block(QUICKSTART, folder)


@pytest.mark.slow  # the README's quickstart as written: a full 10-epoch training (about 40 s on 2 busy cores), eval, analyze, adapt
def test_the_readme_quickstart_runs_as_written(workspace):
    folder, result = workspace
    assert QUICKSTART.code.startswith("tinyzoo train quickstart ")  # the main job comes first
    assert result.returncode == 0, f"{QUICKSTART.where}: {result.stderr[-3000:]}"
    assert (folder / "runs" / "quickstart" / "best" / "model.safetensors").is_file()
    assert (folder / "analysis" / "index.html").is_file()
    assert (folder / "resnet18-small" / "config.json").is_file()


@pytest.mark.slow  # each block starts tinyzoo (and most import torch): 1 to 10 s
@pytest.mark.parametrize("block", OTHERS, ids=[b.where for b in OTHERS])
def test_a_block_marked_offline_runs(workspace, block):
    folder, quickstart = workspace
    assert quickstart.returncode == 0, "the README's quickstart failed first"
    result = run_block(block, folder)
    assert result.returncode == 0, f"{block.where}: {result.stderr[-3000:]}"


def test_the_cpu_torch_line_asks_for_the_versions_pyproject_allows():
    """The README's CPU-only install must not pull a torch that the set-up command then replaces."""
    import tomllib

    line = next(b.code for b in blocks(REPO / "README.md") if "download.pytorch.org/whl/cpu" in b.code)
    asked = dict(re.findall(r"'(torch(?:vision)?)([<>=!][^']*)'", line))
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    allowed = {m.group(1): m.group(2) for d in dependencies if (m := re.fullmatch(r"(torch(?:vision)?)([<>=!,.\d]+)", d))}
    assert asked == allowed


def test_the_readme_set_up_block_is_still_two_commands():
    """.ci/run reads exactly two lines between the set-up markers."""
    text = (REPO / "README.md").read_text()
    inside = text[text.index("<!-- setup:begin -->"):text.index("<!-- setup:end -->")].splitlines()[1:]
    assert [line for line in inside if not line.startswith("```")] == ["python -m pip install -e '.[test]'", "python -m pytest -q"]


# -- one quickstart figure --------------------------------------------------------------------------
FIGURE = re.compile(r"about \d+ s on 2 cores, \d+(?:-\d+)?% val top-1")
FIGURE_PAGES = [REPO / "README.md", REPO / "docs" / "training.md", REPO / "docs" / "recipes.md", REPO / "recipes" / "quickstart.toml"]


def test_the_quickstart_figure_is_the_same_everywhere():
    found = {page.relative_to(REPO).as_posix(): set(FIGURE.findall(page.read_text())) for page in FIGURE_PAGES}
    assert all(found.values()), f"pages without the quickstart figure: {[p for p, f in found.items() if not f]}"
    assert len(set().union(*found.values())) == 1, found
    stale = re.compile(r"~\d+ ?s\b|\d+-\d+ s\b|about (a|two) minutes?|~\d+% val")
    assert {page: stale.findall(text) for page in found if (text := (REPO / page).read_text()) and stale.findall(text)} == {}


# -- signatures ----------------------------------------------------------------------------------
def documented_calls(code: str) -> list[tuple[str, str]]:
    """``(callable, parameter list)`` for each line that starts with a call (continued until its brackets close)."""
    calls, pending = [], ""
    for line in code.splitlines():
        text = (pending + " " + line.strip()) if pending else line
        if not pending and not re.match(r"^[A-Za-z_][\w.]*\(", text):
            continue
        head = text.split("#")[0]
        if head.count("(") > head.count(")"):
            pending = head
            continue
        pending = ""
        match = re.match(r"^([A-Za-z_][\w.]*)\((.*?)\)\s*(->.*)?$", head.strip())
        if match:
            calls.append((match.group(1), match.group(2)))
    return calls


def check_signature(where: str, target, parameters: str) -> None:
    import ast
    import inspect

    tree = ast.parse(f"def f({parameters}): pass").body[0].args
    documented = [(a.arg, "positional") for a in tree.posonlyargs + tree.args] + [(a.arg, "keyword") for a in tree.kwonlyargs]
    defaults = dict(zip([a.arg for a in tree.args][len(tree.args) - len(tree.defaults):], tree.defaults))
    defaults.update({a.arg: d for a, d in zip(tree.kwonlyargs, tree.kw_defaults) if d is not None})
    actual = [p for p in inspect.signature(target).parameters.values() if p.name != "self"]
    named = [(p.name, "keyword" if p.kind is p.KEYWORD_ONLY else "positional") for p in actual
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert documented == named, f"{where}: documented {documented}, the code has {named}"
    assert (tree.kwarg is not None) == any(p.kind is p.VAR_KEYWORD for p in actual), f"{where}: **kwargs"
    for p in actual:
        if p.name in defaults:
            assert ast.literal_eval(defaults[p.name]) == p.default, f"{where}: {p.name}={ast.unparse(defaults[p.name])}, the code says {p.default!r}"
        elif p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            assert p.default is p.empty, f"{where}: {p.name} has a default ({p.default!r}) the docs do not show"


SIGNATURE_BLOCKS = [b for b in ALL_BLOCKS if b.not_run == "signatures"]


@pytest.mark.parametrize("block", SIGNATURE_BLOCKS, ids=[b.where for b in SIGNATURE_BLOCKS])
def test_documented_signatures_are_the_code_s(block):
    import tinyzoo
    from tinyzoo.adapt_report import Changes

    namespace = {"tinyzoo": tinyzoo, "changes": Changes()}
    exec("\n".join(line for line in block.code.splitlines() if line.startswith(("from ", "import "))), namespace)
    calls = documented_calls(block.code)
    assert calls, f"{block.where}: no signature found"
    for name, parameters in calls:
        target = namespace[name.split(".")[0]]
        for part in name.split(".")[1:]:
            target = getattr(target, part)
        check_signature(f"{block.where}: {name}", target, parameters)
