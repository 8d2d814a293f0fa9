"""A run SIGKILLed at every instant a file is half-done, then continued, ends as an uninterrupted run.

Random kills (tests/test_train_resume.py) rarely land inside a rename; these land exactly there.
Each window is a point :func:`tinyzoo.atomic_files.crash_point` names, ``"<file>:<moment>"``
(``staged``: the new content complete under its temporary name; ``swapping``: a replaced folder
moved aside, the new one not yet in place; ``discarding``: a folder being deleted), with ``#N``
for the N-th time it is reached. After each kill the run is continued as a user would:
``tinyzoo train --resume RUN`` when RUN exists, the same command again when it does not. Then:

- the kill happened at that window (the window exists);
- the continuation exits 0 and its checkpoints, best/, snapshots, metrics and learning rates are
  those of an uninterrupted run, bit for bit;
- no temporary file is left in the run's folder or the data cache.

One process (tests/kill_windows.py) imports torch once and forks every run, so 14 windows cost
about what 14 short trainings do, not 28 process start-ups.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from training_sample import write_training_sample

HERE = Path(__file__).parent
WINDOWS = {
    # the first files: recipe.toml, run.json, metrics.jsonl, checkpoints/ are made in a staged folder
    "run.json:staged": "the first files half-written, in a temporary folder beside the run",
    "run:staged": "the first files complete, the folder not yet renamed to the run's name",
    # the data cache
    "train.npy:staged": "the decoded training split complete under its temporary name",
    "train.manifest.json:staged": "the cache's arrays in place, its manifest not",
    # checkpoints and LATEST
    "s00-e0001:staged": "the first checkpoint complete, not yet renamed",
    "LATEST:staged#2": "the second checkpoint in place, LATEST still naming the first",
    "s00-e0001:discarding": "the oldest checkpoint being pruned",
    # best/, snapshots, the epoch's other files
    "best:staged": "the first best/ complete, not yet renamed",
    "best:swapping": "the old best/ moved aside, the new one not yet in place",
    "*-acc*:staged#2": "a snapshot complete, not yet renamed",
    "index.json:staged#2": "the snapshot index being replaced",
    "lr.csv:staged#2": "the learning-rate trace being replaced",
    "curves.png:staged": "the plot being replaced",
    # a damaged checkpoint: killed before the third checkpoint, LATEST's trainer.pt then truncated
    "lr.csv:staged#3,damage": "the newest checkpoint's trainer.pt truncated: resumed from the one before",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("kill-windows")
    sample = write_training_sample(work / "sample")
    subprocess.run([sys.executable, str(HERE / "kill_windows.py"), str(work / "runs"), str(sample), *WINDOWS],
                   check=True, timeout=900)
    return json.loads((work / "runs" / "results.json").read_text())


@pytest.mark.slow
def test_the_reference_run_leaves_no_temporary(results):
    reference = results["reference"]
    assert reference["exit"] == 0, reference["log"]
    assert reference["temporaries"] == []
    # three epochs, two checkpoints kept, the two best snapshots
    assert reference["summary"]["checkpoints"] == ["LATEST", "s00-e0002", "s00-e0003"]


@pytest.mark.slow
@pytest.mark.parametrize("window", WINDOWS, ids=list(WINDOWS))
def test_a_kill_in_the_window_resumes_or_restarts_to_the_same_run(results, window):
    result = results[window]
    assert result["killed"], f"the run was never killed at {window}: {result['log']}"
    assert result["exit"] == 0, result["log"]
    assert result["differs"] == [], result["log"]
    assert result["temporaries"] == []
    if window.endswith(",damage"):
        assert "is damaged" in result["log"] and "resuming from s00-e0001, the one before it" in result["log"]
