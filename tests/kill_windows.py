"""Test support for tests/test_kill_windows.py: kill a training run at named instants, continue it, compare.

Run as ``python tests/kill_windows.py WORK SAMPLE WINDOW[,DAMAGE] ...``; writes WORK/results.json.

Starting a process that imports torch and tinyzoo costs seconds, so this script imports them
once and forks a child per run: the uninterrupted reference run, then for each window a run
that ``$TINYZOO_TEST_KILL_AT`` (:func:`tinyzoo.atomic_files.crash_point`) SIGKILLs at that
instant, and its continuation: ``train --resume`` when the run directory exists, the same
``train`` command again when it does not. The parent never runs torch itself (a forked child
would inherit its thread pools); every child trains with one thread. Each window's result says
whether the kill happened, how the run was continued and with what exit status, what differs
from the reference, and which temporary files are left anywhere the run or its cache writes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

ARGS = ["train", "quickstart", "--threads", "1", "--set", "model.classes=4", "--set", "stages[0].epochs=3",
        "--set", "stages[0].batch_size=16", "--set", "run.keep_snapshots=2"]
TIMING = {"time", "images_per_s", "val_time"}


def child(argv: list[str], env: dict[str, str], log: Path) -> int:
    """Run ``tinyzoo ARGV`` in a forked child with ``env`` set; its exit status (negative: the signal)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.environ.update(env)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.argv = ["tinyzoo", *argv]
            from tinyzoo.cli import main

            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def temporaries(*roots: Path) -> list[str]:
    """Every name under ``roots`` that a writer's temporary carries."""
    return sorted(str(p) for root in roots if root.exists() for p in [root, *root.rglob("*")] if ".tmp-" in p.name)


def tensors(path: Path) -> tuple[dict, bytes]:
    """A safetensors file's tensor table and data (its metadata's key order is not stable)."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header.pop("__metadata__", None)
    return header, data[8 + size:]


def summary(run: Path) -> dict:
    """What must be equal to the reference run, bit for bit."""
    latest = (run / "checkpoints" / "LATEST").read_text().strip()
    metrics = [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in (run / "metrics.jsonl").read_text().splitlines()]
    snapshots = json.loads((run / "snapshots" / "index.json").read_text())
    return {
        "latest": latest,
        "checkpoint": repr(tensors(run / "checkpoints" / latest / "model.safetensors")),
        "best": repr(tensors(run / "best" / "model.safetensors")),
        "snapshots": [s["name"] for s in snapshots] + sorted(p.name for p in (run / "snapshots").iterdir()),
        "snapshot_tensors": [repr(tensors(run / "snapshots" / s["name"] / "model.safetensors")) for s in snapshots],
        "metrics": metrics,
        "lr": (run / "lr.csv").read_text(),
        "checkpoints": sorted(p.name for p in (run / "checkpoints").iterdir()),
    }


def damage(run: Path) -> None:
    """Truncate the trainer.pt of the checkpoint LATEST names (a disk that lost its tail)."""
    latest = (run / "checkpoints" / "LATEST").read_text().strip()
    path = run / "checkpoints" / latest / "trainer.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def scenario(work: Path, sample: Path, window: str, reference: dict) -> dict:
    """Kill a run at ``window`` (optionally damaging its newest checkpoint), continue it, compare."""
    pattern, _, harm = window.partition(",")
    folder = work / pattern.replace("*", "_").replace(":", "_").replace("#", "_")
    folder.mkdir(parents=True)
    run, cache, log = folder / "run", folder / "cache", folder / "log.txt"
    command = [*ARGS, "--data", str(sample), "--out", str(run)]
    env = {"TINYZOO_CACHE_DIR": str(cache)}
    killed = child(command, {**env, "TINYZOO_TEST_KILL_AT": pattern}, log)
    if harm:
        damage(run)
    then = "resume" if (run / "run.json").is_file() else "restart"
    code = child(["train", "--resume", str(run)] if then == "resume" else command, {**env, "TINYZOO_TEST_KILL_AT": ""}, log)
    result = {"killed": killed == -signal.SIGKILL, "then": then, "exit": code, "log": log.read_text()[-3000:],
              "temporaries": temporaries(folder)}
    if code == 0:
        mine = summary(run)
        result["differs"] = sorted(k for k in reference if mine[k] != reference[k])
    return result


def main() -> None:
    work, sample, windows = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    # Import what the children run once, here (the point of forking); compute nothing with torch.
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    for name in ("matplotlib.pyplot", "torch._dynamo", "torch.distributed", "sympy", "safetensors.torch", "PIL.Image", "tqdm.auto", "tinyzoo.cli",
                 "tinyzoo.train.trainer", "tinyzoo.data.cache", "tinyzoo.adapt", "tinyzoo_plugins.models.zhai"):
        importlib.import_module(name)  # the first optimizer step imports torch._dynamo (and sympy): seconds per child
    from tinyzoo.registry import get_registry

    get_registry()
    reference_run = work / "reference" / "run"
    reference_run.parent.mkdir(parents=True)
    code = child([*ARGS, "--data", str(sample), "--out", str(reference_run)], {"TINYZOO_CACHE_DIR": str(work / "reference" / "cache")},
                 work / "reference" / "log.txt")
    results = {"reference": {"exit": code, "temporaries": temporaries(work / "reference"), "log": (work / "reference" / "log.txt").read_text()[-3000:]}}
    if code == 0:
        reference = summary(reference_run)
        results["reference"]["summary"] = {k: v for k, v in reference.items() if k in ("latest", "snapshots", "checkpoints")}
        for window in windows:
            results[window] = scenario(work, sample, window, reference)
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
