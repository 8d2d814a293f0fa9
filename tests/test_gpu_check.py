"""tests/gpu/check.sh --cpu: the GPU check's dry run, so that the script a GPU runs once cannot rot.

The dry run takes every section of the check on the CPU at tiny sizes: the gpu-marked tests
(TINYZOO_TEST_DEVICE=cpu), data, training and evaluation rates, recipe projections and
torch.compile (eager backend). Its budget and interruption paths are checked too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

CHECK = REPO / "tests" / "gpu" / "check.sh"
SECTIONS = ["environment", "correctness", "data", "train", "eval", "targets", "compile", "projections"]


def environment() -> dict:
    return dict(os.environ, PYTHON=sys.executable)


def read_report(out):
    return json.loads((out / "gpu-check.json").read_text())


@pytest.mark.slow  # about 110 s at load 3-4 on 2 cores (60 s of CPU): five small training processes and every section
def test_the_dry_run_passes_every_section_and_writes_both_reports(tmp_path):
    out = tmp_path / "report"
    result = subprocess.run(["bash", str(CHECK), "--cpu", "--out", str(out), "--budget", "900"], capture_output=True, text=True,
                            env=environment(), timeout=1000)
    report = read_report(out)
    statuses = {name: entry["status"] for name, entry in report["sections"].items()}
    assert result.returncode == 0, (statuses, result.stdout[-3000:], result.stderr[-3000:])
    assert list(statuses) == SECTIONS and set(statuses.values()) == {"ok"}
    sections = {name: entry["result"] for name, entry in report["sections"].items()}
    tests = sections["correctness"]["tests"]
    assert len(tests) == 13 and {t["outcome"] for t in tests} == {"passed"}
    assert sections["data"]["resident"] and sections["data"]["host"]["loader"] == "BatchLoader"
    assert {r["loader"] for r in sections["data"]["resident"]} == {"DeviceLoader"}
    assert [r["setup"] for r in sections["train"]["rows"]] == ["fp32", "bf16", "bf16 + channels_last"]
    assert [r["views"] for r in sections["eval"]["rows"]] == ["12crop", "center"]
    projected = {r["recipe"]: r for r in sections["targets"]["rows"] + sections["projections"]["rows"]}
    assert [r["recipe"] for r in sections["targets"]["rows"]] == ["tinyzoo-speedrun", "kim2016-resnet18"]
    assert [r["target_seconds"] for r in sections["targets"]["rows"]] == [60, 600]
    assert set(projected) == {"tinyzoo-speedrun", "kim2016-resnet18", "milani2017-inception-v3-vanilla", "zhai2016-resnet50"}
    assert all(r["status"] == "ok" and r["seconds"] > 0 for r in projected.values())
    assert [s["cached_features"] for s in projected["milani2017-inception-v3-vanilla"]["stages"]] == [True]
    assert [s["micro_batches"] for s in projected["kim2016-resnet18"]["stages"]] == [7810, 15620, 6248, 20306]
    assert sections["compile"]["rows"][0]["setup"] == "bf16 + channels_last + torch.compile"
    markdown = (out / "gpu-check.md").read_text()
    for heading in ("## Correctness", "## Data only", "## Training", "## Evaluation", "## Recipes with a time target", "## Other recipes",
                    "## Training under torch.compile"):
        assert heading in markdown
    doc = tmp_path / "benchmarks.md"
    shutil.copy(REPO / "docs" / "benchmarks.md", doc)
    subprocess.run([sys.executable, str(REPO / "tests" / "gpu" / "check.py"), "--render", str(out / "gpu-check.json"), "--doc", str(doc)],
                   check=True, capture_output=True, timeout=60)
    text = doc.read_text()
    assert text.count("\n## GPU\n") == 1 and "### Recipes with a time target" in text and "## Data loading" in text


def test_a_spent_budget_skips_every_section_and_still_reports(tmp_path):
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, str(REPO / "tests" / "gpu" / "check.py"), "--cpu", "--out", str(out), "--budget", "1"],
                            capture_output=True, text=True, env=environment(), timeout=120)
    assert result.returncode == 1
    report = read_report(out)
    assert [s["status"] for s in report["sections"].values()] == ["skipped"] * len(SECTIONS)
    assert report["sections"]["correctness"]["reason"].startswith("time budget: ")
    assert "| correctness | skipped: time budget" in (out / "gpu-check.md").read_text()


@pytest.mark.slow  # about 10 s: starts the check, stops it in its test section
def test_sigterm_writes_the_report_and_stops_the_tests(tmp_path):
    out = tmp_path / "report"
    process = subprocess.Popen([sys.executable, str(REPO / "tests" / "gpu" / "check.py"), "--cpu", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if read_report(out)["sections"].get("correctness", {}).get("status") == "running":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    time.sleep(2)  # pytest is running
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    report = read_report(out)
    assert process.returncode == 1 and report["interrupted"] == "SIGTERM" and report["finished"]
    assert report["sections"]["correctness"]["status"] == "interrupted"
    assert list(report["sections"]) == ["environment", "correctness"]
    assert "**Interrupted** (SIGTERM)" in (out / "gpu-check.md").read_text()
