"""``python tests/gpu/deterministic_tinyzoo.py ARGS`` is ``tinyzoo ARGS`` with torch's deterministic algorithms on.

The GPU resume checks run training through it (also under ``torchrun``): cuDNN and cuBLAS then
pick the same kernels in the interrupted and the resumed process, so their weights can be
compared bit for bit. ``warn_only``: an operation without a deterministic version warns (and
the comparison shows whether it mattered) instead of stopping the run.
"""

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's requirement for deterministic results

import torch

torch.use_deterministic_algorithms(True, warn_only=True)

from tinyzoo.cli import main  # noqa: E402

main()
