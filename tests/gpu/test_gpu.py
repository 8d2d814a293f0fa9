"""The CUDA paths, checked on a GPU: augmentation, precision, memory format, resume, NCCL.

Marked ``gpu``: they run on CUDA when there is one, on the CPU under
``TINYZOO_TEST_DEVICE=cpu`` (``tests/gpu/check.sh --cpu``, so they cannot rot in CI), and skip
otherwise. ``tests/gpu/check.sh`` runs them and copies what they measured (``record_property``)
into its report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinyzoo.data.augment import Pipeline
from tinyzoo.data.cache import SplitStats
from tinyzoo.data.device_loader import DeviceLoader, release
from tinyzoo.data.loader import BatchLoader

pytestmark = pytest.mark.gpu

HERE = Path(__file__).resolve().parent
DETERMINISTIC = HERE / "deterministic_tinyzoo.py"


# The device: CUDA when the machine has it; TINYZOO_TEST_DEVICE=cpu (what check.sh --cpu sets)
# runs the same tests on the CPU, so every line of them runs in CI; without either they skip.
# (A fixture here, not in a conftest.py: a second module named conftest would shadow tests/conftest.py.)
def chosen_device() -> torch.device | None:
    """``$TINYZOO_TEST_DEVICE``, else ``cuda`` when available, else None."""
    wanted = os.environ.get("TINYZOO_TEST_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda") if torch.cuda.is_available() else None


@pytest.fixture(scope="session")
def device() -> torch.device:
    chosen = chosen_device()
    if chosen is None:
        pytest.skip("needs a GPU (or TINYZOO_TEST_DEVICE=cpu, as tests/gpu/check.sh --cpu sets)")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"TINYZOO_TEST_DEVICE={chosen} but torch sees no CUDA device")
    if chosen.type == "cpu":
        from tinyzoo.cpu_threads import configure

        configure()  # the idle cores, as tinyzoo train: two spinning threads on a busy machine are many times slower
    return chosen


# name -> (augmentation config, tolerance against the CPU batch: 0 = bit for bit)
AUGMENTATIONS = {
    "crop+flip, imagenet": ({"crop": 56, "flip": True}, 0.0),
    "padded reflect, pixel mean": ({"crop": 64, "padding": 4, "padding_mode": "reflect", "normalize": "pixel"}, 0.0),
    "ten crops, dataset": ({"crop": 56, "crop_mode": "ten", "normalize": "dataset"}, 0.0),
    "cutmix, channels_last": ({"crop": 56, "cutmix": 1.0, "channels_last": True}, 0.0),
    # Reductions (the contrast's mean luma) and fused multiply-adds may round differently on a GPU.
    "Kim's jitter + lighting": ({"crop": 56, "jitter": 0.4, "lighting": 0.1}, 1e-4),
    "mixup": ({"crop": 56, "mixup": 0.2}, 1e-5),
    # grid_sample's coordinates differ in the last bit between the CPU and CUDA kernels.
    "random-resized": ({"crop": 56, "crop_mode": "resized"}, 1e-3),
}


def generated_split(n=96, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    flat = images.reshape(-1, 3).astype(np.float64)
    stats = SplitStats.from_sums(images.astype(np.float64).sum(0), flat.T @ flat, n)
    return SimpleNamespace(images=images, labels=rng.integers(0, classes, n), wnids=[f"n{i:08d}" for i in range(classes)], stats=stats)


def max_difference(device_batches, cpu_batches) -> float:
    worst = 0.0
    for (x, y), (x_cpu, y_cpu) in zip(device_batches, cpu_batches, strict=True):
        assert x.device.type == y.device.type and x.shape == x_cpu.shape and x.dtype == x_cpu.dtype
        assert x.is_contiguous(memory_format=torch.channels_last) == x_cpu.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(y.cpu(), y_cpu) if y.dtype == torch.int64 else torch.allclose(y.cpu(), y_cpu, atol=1e-6)
        worst = max(worst, float((x.cpu() - x_cpu).abs().max()))
    return worst


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_resident_loader_on_the_device_gives_the_cpu_batches(device, name, record_property):
    cfg, tolerance = AUGMENTATIONS[name]
    split = generated_split()
    pipeline = Pipeline.from_config(cfg, stats=split.stats)
    kwargs = dict(shuffle=True, seed=4, pipeline=pipeline, drop_last=False, rank=1, world_size=2)
    on_device = DeviceLoader(split, 16, device=device, **kwargs)
    on_cpu = BatchLoader(split, 16, device="cpu", **kwargs)
    on_device.set_epoch(2)
    on_cpu.set_epoch(2)
    worst = max_difference(list(on_device), list(on_cpu))
    record_property("max_abs_difference", worst)
    assert worst <= tolerance, f"{name}: the device batch differs from the CPU batch by {worst:g} (allowed {tolerance:g})"
    release()


def test_host_loader_on_the_device_gives_the_cpu_batches(device, record_property):
    """BatchLoader(device=cuda): memory-mapped rows pinned, copied without blocking, augmented on the GPU."""
    split = generated_split()
    pipeline = Pipeline.from_config({"crop": 56, "flip": True, "cutmix": 1.0}, stats=split.stats)
    host = BatchLoader(split, 16, shuffle=True, seed=1, pipeline=pipeline, device=device, prefetch=2)
    cpu = BatchLoader(split, 16, shuffle=True, seed=1, pipeline=pipeline, device="cpu")
    worst = max_difference(list(host), list(cpu))
    record_property("max_abs_difference", worst)
    assert worst == 0.0


def test_a_resident_epoch_never_waits_for_the_device(device, record_property):
    """After the first batch (which moves the pipeline's constants once), no operation synchronises."""
    import warnings

    split = generated_split(n=256)
    configs = [{"crop": 56, "jitter": 0.4, "lighting": 0.1, "cutmix": 1.0, "mixup": 0.2},
               {"crop": 64, "padding": 4, "normalize": "pixel", "mix_prob": 0.5, "mixup": 0.2},
               {"crop": 48, "crop_mode": "resized", "flip": True}]
    synchronising = 0
    for cfg in configs:
        loader = DeviceLoader(split, 32, shuffle=True, pipeline=Pipeline.from_config(cfg, stats=split.stats), device=device)
        next(iter(loader))  # warm-up
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("warn")
            try:
                batches = [x.sum() for x, _ in loader]
            finally:
                if device.type == "cuda":
                    torch.cuda.set_sync_debug_mode("default")
        synchronising += sum("synchroniz" in str(w.message) for w in caught)
        assert len(batches) == len(loader) == 8 and all(torch.isfinite(b) for b in batches)
    record_property("synchronising_operations", synchronising)
    assert synchronising == 0


def small_resnet18(device, memory_format=torch.contiguous_format):
    import tinyzoo

    torch.manual_seed(0)
    model = tinyzoo.create("resnet18", stem="small", classes=200, weights="none", head_init="random")
    return model.to(device=device, memory_format=memory_format)


def test_bf16_step_is_finite_and_close_to_fp32(device, record_property):
    size = 56 if device.type == "cuda" else 24  # the CPU only checks that the test runs
    images = torch.randn(8, 3, size, size, device=device)
    labels = torch.arange(8, device=device) % 200
    results = {}
    for precision in ("fp32", "bf16"):
        model = small_resnet18(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(images).float(), labels)
        loss.backward()
        grads = torch.cat([p.grad.flatten().float() for p in model.parameters()])
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).step()
        results[precision] = (float(loss.detach()), grads, all(torch.isfinite(p).all() for p in model.parameters()))
    (loss32, grad32, finite32), (loss16, grad16, finite16) = results["fp32"], results["bf16"]
    cosine = float(F.cosine_similarity(grad32, grad16, dim=0))
    record_property("loss_fp32", loss32)
    record_property("loss_bf16", loss16)
    record_property("gradient_cosine", cosine)
    assert finite32 and finite16 and np.isfinite(loss16)
    assert abs(loss16 - loss32) <= 0.02 * abs(loss32), (loss16, loss32)
    assert cosine >= 0.99


def test_channels_last_gives_the_same_logits(device, record_property):
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # compare formats, not TF32
    try:
        images = torch.randn(8, 3, 56 if device.type == "cuda" else 24, 56 if device.type == "cuda" else 24, device=device)
        with torch.no_grad():
            plain = small_resnet18(device).eval()(images)
            last = small_resnet18(device, torch.channels_last).eval()(images.contiguous(memory_format=torch.channels_last))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous
    record_property("max_abs_difference", float((plain - last).abs().max()))
    torch.testing.assert_close(last, plain, rtol=1e-4, atol=1e-4)


# -- training through the command line: resume after SIGKILL, and torchrun with one process ------------------
RECIPE = """
name = "gpu-check"
description = "two stages on the 4-class sample: the head on cached features, then everything"
[model]
arch = "resnet20_zhai"
classes = 4
weights = "none"
options = {{ width = 0.25 }}
[data]
fixed_views = true
[data.train]
crop = 64
flip = true
[[stages]]
name = "head"
train = "head"
iterations = 3
batch_size = 8
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}
[[stages]]
name = "all"
train = "all"
epochs = {epochs}
batch_size = 8
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9, nesterov = true }}
schedule = {{ name = "cosine" }}
[evaluation]
views = "center"
crop = 64
[run]
keep_snapshots = 2
"""
TIMING_FIELDS = {"time", "images_per_s", "val_time"}


@pytest.fixture(scope="module")
def training(tmp_path_factory, device):
    """The sample dataset, the recipe file, and one uninterrupted run to compare with."""
    from training_sample import write_training_sample

    root = tmp_path_factory.mktemp("gpu-training")
    sample = write_training_sample(root / "sample")
    recipe = root / "gpu-check.toml"
    recipe.write_text(RECIPE.format(epochs=8 if device.type == "cuda" else 3))  # a GPU runs an epoch in a blink: more to stop in
    setup = SimpleNamespace(root=root, sample=sample, recipe=recipe, device=device)
    reference = root / "reference"
    finish(launch(setup, reference))
    setup.reference = reference
    return setup


def environment() -> dict:
    env = dict(os.environ)
    env.pop("TINYZOO_PROGRESS", None)
    env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def launch(setup, out: Path, *extra: str, torchrun: bool = False, resume: bool = False) -> subprocess.Popen:
    """``tinyzoo train`` (deterministic algorithms on) of the check's recipe into ``out``, or its resume."""
    args = ["train", "--resume", str(out)] if resume else [
        "train", str(setup.recipe), "--data", str(setup.sample), "--out", str(out), "--device", str(setup.device), "--threads", "1"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"] if torchrun else [sys.executable]
    return subprocess.Popen([*launcher, str(DETERMINISTIC), *args, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=environment())


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return err


def wait_for_checkpoint(process: subprocess.Popen, out: Path, *, mid_epoch: bool = False, timeout: float = 300) -> str:
    pointer = out / "checkpoints" / "LATEST"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name = pointer.read_text().strip() if pointer.is_file() else ""
        if name and (not mid_epoch or "-b" in name):
            return name
        if process.poll() is not None:
            raise AssertionError(f"the run ended before a checkpoint appeared: {process.stderr.read()[-3000:]}")
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared")


def final_weights(out: Path) -> dict:
    from safetensors.torch import load_file

    latest = (out / "checkpoints" / "LATEST").read_text().strip()
    return load_file(out / "checkpoints" / latest / "model.safetensors")


def assert_same_run(out: Path, reference: Path) -> None:
    mine, theirs = final_weights(out), final_weights(reference)
    assert mine.keys() == theirs.keys()
    differing = [name for name in mine if not torch.equal(mine[name], theirs[name])]
    assert not differing, f"{len(differing)} tensors differ from the uninterrupted run's, first {differing[0]}"
    rows = [[{k: v for k, v in json.loads(line).items() if k not in TIMING_FIELDS} for line in (path / "metrics.jsonl").read_text().splitlines()]
            for path in (out, reference)]
    assert rows[0] == rows[1]


def test_resume_after_sigkill_is_bit_identical(training, tmp_path):
    out = tmp_path / "run"
    process = launch(training, out, "--checkpoint-every-steps", "2")
    wait_for_checkpoint(process, out, mid_epoch=True)
    process.kill()  # SIGKILL: no handler runs
    process.communicate()
    err = finish(launch(training, out, resume=True))
    assert "resuming" in err
    assert_same_run(out, training.reference)


def test_torchrun_with_one_process_stops_resumes_and_matches(training, tmp_path, record_property):
    """One process under torchrun joins a process group (nccl on CUDA, gloo on the CPU): DDP, the
    feature cache's gather, the stop agreement and the RNG gather all run as on many GPUs."""
    out = tmp_path / "run"
    process = launch(training, out, torchrun=True)
    wait_for_checkpoint(process, out)
    os.kill(process.pid, signal.SIGTERM)  # to torchrun, which passes it on: the trainer checkpoints and stops
    _, err = process.communicate(timeout=300)
    record_property("first_exit_status", process.returncode)
    if process.returncode == 0:
        pytest.fail("the run finished before SIGTERM arrived; nothing was resumed")
    assert "on cached features" in err and "stopped; a checkpoint is in" in err, err[-3000:]
    finish(launch(training, out, torchrun=True, resume=True))
    assert_same_run(out, training.reference)
