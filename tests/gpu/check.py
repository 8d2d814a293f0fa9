"""The GPU check: correctness, throughput and recipe projections on one GPU, in one report.

    python tests/gpu/check.py [--cpu] [--out DIR] [--budget SECONDS]   (tests/gpu/check.sh wraps it)
    python tests/gpu/check.py --render REPORT.json [--doc docs/benchmarks.md]

Sections, in order, each in its own try/except (a failure is recorded and the next runs):

1. ``environment``: versions, the device, the load;
2. ``correctness``: the ``gpu``-marked tests (tests/gpu/test_gpu.py) in a pytest subprocess;
3. ``data``: data-only images/s of the resident loader on generated data of the full
   dataset's size (goal: 1,000,000 img/s on one H100-class GPU), and of the host loader;
4. ``train``: ResNet-18 (small stem, 56 px) training images/s in fp32, bf16, bf16 +
   channels_last, fed by the resident loader and by a fixed batch (does it wait for data?);
5. ``eval``: ``tinyzoo eval``'s loop with 12 views;
6. ``targets``: the projected wall time on the full dataset of the recipes with a time target
   (tests/benchmarks/projection.py): kim2016-resnet18, tinyzoo-resnet18, tinyzoo-speedrun;
7. ``compile``: the bf16 + channels_last step under ``torch.compile`` (compiling is slow);
8. ``projections``: every other built-in recipe, projected likewise.

``--cpu`` runs the same code on the CPU at tiny sizes (what CI does, so the script cannot rot).
A global ``--budget`` (seconds) skips what no longer fits; the report (``gpu-check.json`` and
``gpu-check.md`` in ``--out``) is rewritten after every section and on SIGTERM / Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "benchmarks"))

import report_format  # noqa: E402  (tests/gpu is sys.path[0])

from tinyzoo.cpu_threads import configure, passive_wait  # noqa: E402  (torch-free)

passive_wait()  # before torch is imported: in this process and the pytest it starts, idle OpenMP threads sleep

# What each mode measures. "gpu" sizes are the full dataset's; "cpu" ones keep CI's dry run short.
SIZES = {
    "gpu": {"train_images": 100_000, "val_images": 10_000, "data_batches": [256, 1024], "host_batches": 100, "train_batch": 256,
            "train_steps": 30, "train_warmup": 3, "crop": 56, "eval_images": 10_000, "measure_cap": None, "projection_steps": 10, "compile_backend": "inductor",
            "pytest_timeout": 240},
    "cpu": {"train_images": 96, "val_images": 16, "data_batches": [16], "host_batches": 3, "train_batch": 2,
            "train_steps": 1, "train_warmup": 1, "crop": 24, "eval_images": 4, "measure_cap": 2, "projection_steps": 1, "compile_backend": "eager",
            "pytest_timeout": 240},
}
# The dry run projects the recipes that, between them, take every branch of the projection (stem change,
# cached features, accumulation, pixel normalisation, 299 px input); the GPU run projects all of them.
CPU_RECIPES = ("tinyzoo-speedrun", "kim2016-resnet18", "milani2017-inception-v3-vanilla", "zhai2016-resnet50")
TARGETS = {"kim2016-resnet18": 600, "tinyzoo-resnet18": 600, "tinyzoo-speedrun": 60}
DATA_GOAL = 1_000_000


class Interrupted(Exception):
    """SIGTERM or Ctrl-C: the report is written and the check stops."""


class Check:
    """The running check: its settings, what sections share, and the report."""

    def __init__(self, args):
        self.mode = "cpu" if args.cpu else "gpu"
        self.sizes = SIZES[self.mode]
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.deadline = self.started + args.budget
        self.shared: dict = {}
        self.report: dict = {"mode": self.mode, "budget_s": args.budget, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "finished": None, "sections": {}}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, fn, needs: float) -> None:
        """Run section ``fn(check)``; record ok / failed / skipped, its seconds and its result."""
        entry = self.report["sections"].setdefault(name, {})
        if self.left() < needs:
            entry.update(status="skipped", reason=f"time budget: {self.left():.0f}s left, the section needs about {needs:.0f}s")
            self.write()
            return
        start = time.monotonic()
        print(f"== {name} ({self.left():.0f}s of the budget left)", flush=True)
        try:
            entry.update(status="running")
            self.write()
            entry["result"] = fn(self)
            entry["status"] = "ok" if not entry["result"].get("failures") else "failed"
        except Interrupted:
            entry.update(status="interrupted")
            raise
        except BaseException as exc:  # a section's failure is a finding, not the end of the check
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-3000:])
            print(entry["traceback"], file=sys.stderr, flush=True)
        finally:
            entry["seconds"] = round(time.monotonic() - start, 1)
            self.write()

    def write(self) -> None:
        self.report["elapsed_s"] = round(time.monotonic() - self.started, 1)
        for name, text in (("gpu-check.json", json.dumps(self.report, indent=2, default=str) + "\n"),
                           ("gpu-check.md", report_format.markdown(self.report))):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.out / name)


# -- sections ------------------------------------------------------------------------------------------
def environment(check: Check) -> dict:
    import torch

    import tinyzoo

    device = device_of(check)
    threads = configure() if device.type == "cpu" else torch.get_num_threads()  # on the CPU: the idle cores, as tinyzoo train
    info = {"python": platform.python_version(), "torch": torch.__version__, "tinyzoo": tinyzoo.__version__,
            "device": str(device), "cpus": os.cpu_count(), "torch_threads": threads, "load_average": os.getloadavg(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "commit": git_commit()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


def device_of(check: Check):
    import torch

    if check.mode == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device; run with --cpu for the dry run")
    return torch.device("cuda")


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def correctness(check: Check) -> dict:
    """The gpu-marked tests, in a subprocess bounded by the budget; results from their JUnit XML."""
    junit = check.out / "junit.xml"
    env = dict(os.environ, TINYZOO_TEST_DEVICE="cpu" if check.mode == "cpu" else "cuda", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "pytest", "-m", "gpu", str(HERE / "test_gpu.py"), "-q", "-rA", "-p", "no:cacheprovider",
               f"--junitxml={junit}", "-o", "junit_family=xunit1"]
    timeout = min(check.sizes["pytest_timeout"], max(30.0, check.left() - 30))
    with open(check.out / "pytest.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = "timed out"
        finally:  # also on Interrupted, which goes on to the caller once the tests are stopped
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    tests = read_junit(junit) if junit.is_file() else []
    failures = [t["name"] for t in tests if t["outcome"] in ("failed", "error")]
    if status not in (0, 1) or not tests:
        failures.append(f"pytest exit status {status} (see pytest.log)")
    return {"pytest_status": status, "tests": tests, "failures": failures,
            "passed": sum(t["outcome"] == "passed" for t in tests), "skipped": sum(t["outcome"] == "skipped" for t in tests)}


def read_junit(path: Path) -> list[dict]:
    tests = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        message = ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = "failed" if kind == "failure" else kind
                message = (found.get("message") or "")[:300]
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        tests.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0), "message": message,
                      "properties": properties})
    return tests


def data(check: Check) -> dict:
    import torch
    from gpu_speed import CROP_FLIP, CUTMIX, KIM_AUGMENT, data_rate, generated_split

    device = device_of(check)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    start = time.perf_counter()
    train = check.shared["train"] = generated_split(check.sizes["train_images"])
    check.shared["val"] = generated_split(check.sizes["val_images"], seed=1)
    generated = time.perf_counter() - start
    rows = []
    for batch in check.sizes["data_batches"]:
        for name, config in (("crop + flip", CROP_FLIP), ("Kim: jitter + lighting", KIM_AUGMENT), ("cutmix", CUTMIX)):
            rows.append(dict(data_rate(train, device, batch, config), augmentation=name))
    host = dict(data_rate(train, device, check.sizes["data_batches"][0], CROP_FLIP, resident=False, max_batches=check.sizes["host_batches"]),
                augmentation="crop + flip")
    best = max(r["images_per_s"] for r in rows)
    return {"generated_seconds": round(generated, 1), "train_images": len(train.labels), "resident": rows, "host": host,
            "best_images_per_s": best, "goal_images_per_s": DATA_GOAL, "goal_met": best >= DATA_GOAL}


def train(check: Check) -> dict:
    from gpu_speed import TrainSetup, train_rate

    device = device_of(check)
    setups = [TrainSetup("fp32"), TrainSetup("bf16", bf16=True), TrainSetup("bf16 + channels_last", bf16=True, channels_last=True)]
    sizes = check.sizes
    rows = [train_rate(check.shared["train"], device, s, sizes["train_batch"], sizes["train_steps"], warmup=sizes["train_warmup"],
                       crop=sizes["crop"]) for s in setups]
    return {"model": f"resnet18, stem small, {sizes['crop']} px crops of Kim's augmentation, 200 classes", "rows": rows}


def evaluation(check: Check) -> dict:
    from gpu_speed import eval_rate

    device = device_of(check)
    return {"rows": [eval_rate(check.shared["val"], device, views, images=check.sizes["eval_images"], crop=check.sizes["crop"])
                     for views in ("12crop", "center")]}


def project(check: Check, section: str, names: list[str]) -> dict:
    """Project ``names`` one by one (a failure is recorded per recipe), saving the report after each."""
    from projection import project_recipe

    from tinyzoo.recipe import load_recipe

    device = device_of(check)
    cache = check.shared.setdefault("projection_cache", {})
    rows, failures = [], []
    for name in names:
        if check.left() < 20:
            rows.append({"recipe": name, "status": "not measured: time budget"})
            continue
        try:
            row = project_recipe(load_recipe(name), check.shared["train"], device, compile_backend=check.sizes["compile_backend"],
                                 cap=check.sizes["measure_cap"], steps=check.sizes["projection_steps"], cache=cache)
            row.update(status="ok", target_seconds=TARGETS.get(name))
        except Exception as exc:  # one recipe's failure must not hide the others'
            row = {"recipe": name, "status": f"failed: {type(exc).__name__}: {exc}"[:300]}
            failures.append(name)
        rows.append(row)
        check.report["sections"][section]["result"] = {"rows": rows}
        check.write()
    return {"rows": rows, "failures": failures, "measured_batch_cap": check.sizes["measure_cap"]}


def recipe_names(check: Check) -> list[str]:
    from tinyzoo.registry import get_registry

    return sorted(get_registry().recipes) if check.mode == "gpu" else list(CPU_RECIPES)


def targets(check: Check) -> dict:
    """The recipes with a time target, first, while the budget is fullest."""
    return project(check, "targets", [n for n in recipe_names(check) if n in TARGETS])


def projections(check: Check) -> dict:
    """Every other built-in recipe (after torch.compile, which the training figures need more)."""
    return project(check, "projections", [n for n in recipe_names(check) if n not in TARGETS])


def compiled(check: Check) -> dict:
    from gpu_speed import TrainSetup, train_rate

    setup = TrainSetup("bf16 + channels_last + torch.compile", bf16=True, channels_last=True, compile=True)
    sizes = check.sizes
    row = train_rate(check.shared["train"], device_of(check), setup, sizes["train_batch"], sizes["train_steps"], warmup=sizes["train_warmup"],
                     compile_backend=sizes["compile_backend"], crop=sizes["crop"])
    return {"model": f"resnet18, stem small, {sizes['crop']} px crops of Kim's augmentation, 200 classes", "rows": [row],
            "backend": sizes["compile_backend"]}


# name, function, seconds it needs at least on a GPU / in the dry run (a section that no longer fits is skipped)
SECTIONS = [("environment", environment, (5, 2)), ("correctness", correctness, (60, 30)), ("data", data, (20, 2)),
            ("train", train, (20, 5)), ("eval", evaluation, (10, 2)), ("targets", targets, (30, 10)),
            ("compile", compiled, (90, 10)), ("projections", projections, (30, 10))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the dry run: the same sections on the CPU at tiny sizes")
    parser.add_argument("--out", default=None, help="report folder [default: /tmp/tinyzoo-gpu-check]")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole check [default: 330 on a GPU, 240 with --cpu]")
    parser.add_argument("--render", type=Path, help="only re-render this report JSON as Markdown (with --doc: into that file's GPU section)")
    parser.add_argument("--doc", type=Path, help="with --render: the Markdown file whose '## GPU' section to rewrite")
    args = parser.parse_args(argv)
    if args.render:
        return report_format.render(args.render, args.doc)
    args.out = args.out or "/tmp/tinyzoo-gpu-check"
    args.budget = args.budget or (240.0 if args.cpu else 330.0)
    check = Check(args)

    def interrupt(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        for name, fn, needs in SECTIONS:
            check.run(name, fn, needs[0] if check.mode == "gpu" else needs[1])
    except Interrupted as exc:
        check.report["interrupted"] = str(exc)
    finally:
        check.report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        check.write()
    print(f"report: {check.out / 'gpu-check.md'} and gpu-check.json", flush=True)
    bad = [n for n, s in check.report["sections"].items() if s.get("status") != "ok"]
    return 1 if bad or "interrupted" in check.report else 0


if __name__ == "__main__":
    sys.exit(main())
