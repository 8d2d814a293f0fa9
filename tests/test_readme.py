"""The README's quickstart block runs as written, offline, on a fresh cache."""

from __future__ import annotations

import re
import shlex

from conftest import REPO


def quickstart_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Quickstart"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


def test_quickstart_block_runs_offline(cli, tmp_path):
    commands = quickstart_commands()
    assert commands[0] == ["tinyzoo", "train", "quickstart"]  # the main job comes first
    env = {"TINYZOO_CACHE_DIR": str(tmp_path / "cache"), "TINYZOO_OFFLINE": "1", "TINYZOO_THREADS": "1"}
    for argv in commands:
        assert argv[0] == "tinyzoo"
        result = cli(*argv[1:], env=env, cwd=tmp_path)
        assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr[-2000:]}"
    assert (tmp_path / "runs" / "quickstart" / "best" / "model.safetensors").is_file()
    assert (tmp_path / "analysis" / "index.html").is_file()
    assert (tmp_path / "resnet18-small" / "config.json").is_file()
