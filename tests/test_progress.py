"""Progress inside long loops: a tqdm bar on a terminal, a plain line every few seconds elsewhere.

Checked on the real command line: a training run (cache decoding, the epoch, validation) with
stderr on a pseudo-terminal and on a pipe, ``tinyzoo data download`` through click, and the
line format itself on a fake clock.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading

import pytest
from training_sample import CLASSES, write_training_sample

from tinyzoo import console
from tinyzoo.console import ProgressLines, progress_every, progress_mode

QUICK_RUN = ("train", "quickstart", "--epochs-scale", "0.1", "--set", f"model.classes={CLASSES}",
             "--set", "stages[0].batch_size=8", "--threads", "1")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_n_seconds_then_a_last_one(capsys):
    clock = FakeClock()
    bar = ProgressLines(total=300, desc="scratch 1/3", unit="img", every=10, clock=clock)
    for second in range(1, 31):  # 10 images a second for 30 s
        clock.now += 1
        bar.update(10)
        if second == 25:
            bar.set_postfix(loss="0.512", acc="0.830")
    clock.now += 0.5
    bar.close()
    assert capsys.readouterr().err.splitlines() == [
        "scratch 1/3: 100/300 img (33%), 10.00img/s, 00:10 elapsed, ETA 00:20",
        "scratch 1/3: 200/300 img (67%), 10.00img/s, 00:20 elapsed, ETA 00:10",
        "scratch 1/3: 300/300 img (100%), 10.00img/s, 00:30 elapsed, ETA 00:00, loss=0.512, acc=0.830",
    ]  # nothing more at close: the last line already said 300/300


def test_a_short_loop_prints_nothing_and_bytes_scale(capsys):
    clock = FakeClock()
    with ProgressLines(total=100, desc="quick", every=10, clock=clock) as bar:
        clock.now += 9
        bar.update(100)
    assert capsys.readouterr().err == ""
    with ProgressLines(desc="tiny-imagenet-200.zip", unit="B", unit_scale=True, unit_divisor=1024, initial=2**20, every=10,
                       clock=clock) as bar:
        clock.now += 10
        bar.update(20 * 2**20)  # a resumed download: the rate counts this run's bytes only
        clock.now += 5
        bar.update(2**20)
    assert capsys.readouterr().err.splitlines() == [  # sizes in MiB; tqdm scales rates by 1000 (20 MiB / 10 s)
        "tiny-imagenet-200.zip: 21.0MB, 2.10MB/s, 00:10 elapsed",
        "tiny-imagenet-200.zip: 22.0MB, 1.47MB/s, 00:15 elapsed",
    ]


@pytest.mark.parametrize(("value", "mode"), [(None, "lines"), ("0", "off"), ("", "off"), ("1", "bar"), ("bar", "bar"),
                                             ("lines", "lines"), ("yes", "lines")])
def test_the_mode_follows_tinyzoo_progress(monkeypatch, value, mode):
    if value is None:
        monkeypatch.delenv(console.PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(console.PROGRESS_ENV, value)
    assert progress_mode() == mode  # pytest's stderr is not a terminal


@pytest.mark.parametrize(("value", "every"), [(None, 10.0), ("2.5", 2.5), ("0", 0.0), ("soon", 10.0), ("-3", 0.0)])
def test_the_interval_follows_tinyzoo_progress_every(monkeypatch, value, every):
    if value is None:
        monkeypatch.delenv(console.PROGRESS_EVERY_ENV, raising=False)
    else:
        monkeypatch.setenv(console.PROGRESS_EVERY_ENV, value)
    assert progress_every() == every


# -- the real command line ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_training_sample(tmp_path_factory.mktemp("progress-sample") / "sample")


def environment(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (console.PROGRESS_ENV, console.PROGRESS_EVERY_ENV)}
    env.update(TINYZOO_CACHE_DIR=str(tmp_path / "cache"), **extra)
    return env


def on_terminal(argv: list[str], env: dict, cwd) -> tuple[int, str, str]:
    """``(returncode, stdout, terminal)``: ``argv`` run with its stderr on a pseudo-terminal 120 columns wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        stdout, _ = process.communicate(timeout=300)
    finally:
        reader.join(timeout=10)
        os.close(master)
    return process.returncode, stdout.decode(), b"".join(chunks).decode()


LINE = r"{desc}: {done}/{total} img \({percent}%\), [\d.]+img/s, \d\d:\d\d elapsed, ETA \d\d:\d\d"


@pytest.mark.slow  # two CLI runs importing torch: about 12 s on 2 busy cores
def test_training_and_eval_print_lines_on_a_pipe(cli, sample, tmp_path):
    env = environment(tmp_path, TINYZOO_PROGRESS_EVERY="0")  # a line at every update
    result = cli(*QUICK_RUN, "--data", str(sample), "--out", str(tmp_path / "run"), env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "\r" not in result.stderr
    assert re.fullmatch(LINE.format(desc="decoding train", done=80, total=80, percent=100), lines[lines.index("training on the CPU with 1 thread(s)") + 1])
    epoch = [line for line in lines if line.startswith("scratch 1/1: ")]
    for k, line in enumerate(epoch[:10]):  # ten batches of 8
        assert re.fullmatch(LINE.format(desc="scratch 1/1", done=8 * (k + 1), total=80, percent=10 * (k + 1)), line), line
    assert re.fullmatch(LINE.format(desc="scratch 1/1", done=80, total=80, percent=100) + r", loss=[\d.]+, acc=[\d.]+", epoch[-1])
    assert len(epoch) == 11
    validating = [line for line in lines if line.startswith("validating: ")]
    assert len(validating) == 1 and re.fullmatch(LINE.format(desc="validating", done=8, total=8, percent=100), validating[0])

    evaluated = cli("eval", str(tmp_path / "run"), "--json", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    scoring = [line for line in evaluated.stderr.splitlines() if line.startswith("center/softmax: ")]
    assert len(scoring) == 1 and re.fullmatch(LINE.format(desc="center/softmax", done=8, total=8, percent=100), scoring[0])



@pytest.mark.slow  # one CLI run importing torch: about 6 s on 2 busy cores
def test_training_draws_bars_on_a_terminal(sample, tmp_path):
    env = environment(tmp_path, TINYZOO_PROGRESS_EVERY="0")  # no effect on a terminal
    code, stdout, terminal = on_terminal([sys.executable, "-m", "tinyzoo", *QUICK_RUN, "--data", str(sample), "--out", "run"], env, tmp_path)
    assert code == 0, terminal
    assert stdout.startswith("run: run\n")
    assert " elapsed, ETA " not in terminal  # no plain lines
    bar = r"\r{desc}: +{percent}%\|[█▏▎▍▌▋▊▉ ]+\| {done}/{total} \[\d\d:\d\d<\d\d:\d\d, +[\d.?]+img/s{postfix}\]"
    assert re.search(bar.format(desc="decoding train", percent=100, done=80, total=80, postfix=""), terminal)
    assert re.search(bar.format(desc="scratch 1/1", percent=100, done=80, total=80, postfix=r", acc=[\d.]+, loss=[\d.]+"), terminal)
    assert re.search(r"\rvalidating: +0%\|", terminal)  # leave=False: cleared once done
    assert "epoch 1.00 [scratch 1]" in terminal


def test_download_prints_lines_for_each_step(tmp_path, monkeypatch):
    """``tinyzoo data download`` through click (stderr is not a terminal): the bytes, the extraction, the decoding."""
    import hashlib

    from click.testing import CliRunner
    from data_fixtures import zip_tree
    from download_server import FileServer
    from tqdm import tqdm

    from tinyzoo.cli import cli as tinyzoo_cli
    from tinyzoo.data.sample import write_sample

    format_sizeof = tqdm.format_sizeof
    tree = write_sample(tmp_path / "source" / "tiny", classes=3, per_class=8, val_per_class=2, test_per_class=1).root
    data = zip_tree(tree)
    monkeypatch.setenv(console.PROGRESS_EVERY_ENV, "0")
    monkeypatch.delenv(console.PROGRESS_ENV, raising=False)
    server = FileServer(data).start()
    try:
        result = CliRunner().invoke(tinyzoo_cli, ["data", "download", str(tmp_path / "data"), "--url", server.url, "--cache-dir",
                                                  str(tmp_path / "cache"), "--workers", "0", "--sha256", hashlib.sha256(data).hexdigest()])
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    size = format_sizeof(len(data), divisor=1024)  # 97.0k: tqdm's own sizes, in KiB
    assert re.fullmatch(rf"data.zip: {size}/{size}B \(100%\), [\d.]+[kMG]?B/s, \d\d:\d\d elapsed, ETA 00:00", lines[0]), lines[0]
    assert {line.split(": ")[0] for line in lines[1:-2]} == {"extracting"} and "(100%)" in lines[-3]
    assert re.fullmatch(LINE.format(desc="decoding train", done=24, total=24, percent=100), lines[-2])
    assert re.fullmatch(LINE.format(desc="decoding val", done=6, total=6, percent=100), lines[-1])
