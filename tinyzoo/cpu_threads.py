"""CPU threads that survive a busy machine: how many, for which phase, and how they wait.

torch's CPU kernels split each operation over OpenMP threads that meet at a barrier. When
another process holds one of the cores, every operation waits for the thread that is not
running, and a thread that arrives first spins, taking CPU time from the one it waits for.
On the project's shared 2-core machine (docs/benchmarks.md, "CPU threads") this made two
threads several times slower than one as soon as another process woke up. Three rules:

- **model phases** (training steps, evaluation forwards, feature extraction) use the cores
  idle when the command starts (:func:`idle_cores`), or ``--threads`` / ``$TINYZOO_THREADS``;
- **augmentation** (:class:`~tinyzoo.data.loader.BatchLoader` on the CPU) runs its batch with
  :data:`AUGMENT_THREADS` thread (:func:`limited`): its operations are small, so a second
  thread gains little on an idle machine and loses most under load;
- **waiting threads sleep** instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, set by
  :func:`passive_wait` before torch is imported, unless the environment already says).

Torch-free until a function needs it; importing this module never imports torch.
"""

from __future__ import annotations

import contextlib
import os
import sys

AUGMENT_THREADS = 1
WAIT_POLICY = "PASSIVE"


def idle_cores(processes: int = 1) -> int:
    """CPU threads for each of ``processes`` processes: the cores idle right now, at least 1.

    On a shared machine, OpenMP threads that outnumber the free cores spin against each
    other: on 2 busy cores one thread trained 5-10x faster than two (docs/training.md).
    """
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    free = max(1, round(cores - busy))
    return max(1, min(torch.get_num_threads(), free) // max(1, processes))


def environment_threads() -> int | None:
    """Threads requested through TINYZOO_THREADS (None when unset)."""
    value = os.environ.get("TINYZOO_THREADS")
    return int(value) if value else None


def configure(threads: int | None = None, processes: int = 1) -> int:
    """Set torch's CPU threads for model phases: ``threads``, else ``$TINYZOO_THREADS``, else :func:`idle_cores`.

    Returns the count set.
    """
    import torch

    count = threads or environment_threads() or idle_cores(processes)
    torch.set_num_threads(count)
    return count


def configure_for(device) -> int | None:
    """:func:`configure` when ``device`` (a name, a torch.device or None for "CUDA when there is one") is the CPU."""
    import torch

    name = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    return configure() if name.startswith("cpu") else None


@contextlib.contextmanager
def limited(threads: int | None = None):
    """Run the block with at most ``threads`` torch CPU threads (default :data:`AUGMENT_THREADS`), then restore the count.

    Use it around a phase of small operations, never around a ``yield`` that hands control
    to a model phase.
    """
    import torch

    threads = AUGMENT_THREADS if threads is None else threads
    before = torch.get_num_threads()
    if before <= threads:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def passive_wait(environ=os.environ) -> bool:
    """Make OpenMP's waiting threads sleep (``OMP_WAIT_POLICY=PASSIVE``) for this process.

    OpenMP reads the variable once, when torch loads it, so this works only before torch is
    imported, and it leaves a value the user set alone. Returns whether it set the policy.
    """
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in environ:
        return False
    environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True
