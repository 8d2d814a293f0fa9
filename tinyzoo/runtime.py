"""Where and how a model computes: the device, the precision, the memory format and the processes.

One policy for training and evaluation. A :class:`Runtime` holds the choices and carries them
out, so the training loop reads as a list of steps (as Lightning Fabric's does):
``runtime.autocast()`` around the forward, ``runtime.backward(loss, scaler)``,
``runtime.optimizer_step(...)``.

- device: ``auto`` is CUDA when there is one, else the CPU; ``cuda`` without a GPU is an error;
  under ``torchrun`` each process takes the GPU of its local rank.
- precision: ``run.amp`` for training (``auto``: bf16 autocast on CUDA, full precision on the
  CPU; ``fp16`` adds a gradient scaler). Scoring (the trainer's validation and ``tinyzoo eval``
  alike) always runs as ``auto`` does, so the two give the same numbers.
- memory format: channels_last inputs (and weights) on CUDA and the CPU alike when
  ``run.channels_last`` (the default; scoring always): tensor cores want NHWC, and on this
  project's 2-core CPU channels_last trained convnets 1.2-1.4x faster (docs/benchmarks.md).
- processes: :class:`~tinyzoo.distributed.World` (one process unless launched by ``torchrun``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from tinyzoo import distributed
from tinyzoo.distributed import World
from tinyzoo.errors import TinyzooError


def resolve_device(name: str | None):
    """``auto`` (or None) -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TinyzooError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TinyzooError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def amp_dtype(mode: str, device):
    """The autocast dtype for ``run.amp`` = ``mode`` on ``device``, or None for full precision."""
    import torch

    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16":
        return torch.float16
    return torch.bfloat16


def channels_last_helps(device, wanted: bool) -> bool:
    """Whether to compute in channels_last: when ``wanted``, on CUDA and the CPU."""
    return bool(wanted) and device.type in ("cuda", "cpu")


def configure(device) -> None:
    """Backend settings for ``device``: on CUDA, cuDNN's autotuner (off under deterministic
    algorithms: it may pick other kernels after a resume) and TF32 matrix products."""
    import torch

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


@dataclass(frozen=True)
class Runtime:
    """``device`` (a ``torch.device``), ``amp`` (the autocast dtype, or None), ``channels_last``
    and ``world``; build it with :meth:`for_training` or :meth:`for_inference`."""

    device: Any
    amp: Any = None
    channels_last: bool = False
    world: World = field(default_factory=World)

    @classmethod
    def for_training(cls, run, device: str | None = None) -> Runtime:
        """The runtime of a recipe's ``run`` table (``device`` overrides ``run.device``); joins the
        process group when launched by ``torchrun``."""
        chosen = resolve_device(device or run.device)
        world = distributed.init(chosen)
        chosen = distributed.device_for(world, chosen)
        configure(chosen)
        return cls(chosen, amp_dtype(run.amp, chosen), channels_last_helps(chosen, run.channels_last), world)

    @classmethod
    def for_inference(cls, device: str | None = None) -> Runtime:
        """One process scoring on ``device`` (default: CUDA when available) with the scoring policy."""
        chosen = resolve_device(str(device) if device is not None else None)
        configure(chosen)
        return cls(chosen, amp_dtype("auto", chosen), channels_last_helps(chosen, True))

    def scoring(self) -> Runtime:
        """This runtime as scoring uses it: same device, processes and memory format, the inference precision."""
        return replace(self, amp=amp_dtype("auto", self.device))

    # -- computing --------------------------------------------------------------------------------
    def autocast(self):
        """The autocast context of this precision (nothing for full precision)."""
        if self.amp is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device.type, dtype=self.amp)

    def inputs(self, x):
        """``x`` in this memory format (channels_last applies to 4-D image batches only)."""
        if self.channels_last and getattr(x, "dim", lambda: 0)() == 4:
            import torch

            return x.contiguous(memory_format=torch.channels_last)
        return x

    def prepare(self, model):
        """``model`` moved to the device (and its weights to channels_last); returned."""
        import torch

        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    # -- training -----------------------------------------------------------------------------------
    def grad_scaler(self):
        """A gradient scaler for fp16 training, else None."""
        import torch

        return torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None

    def backward(self, loss, scaler=None) -> None:
        """``loss.backward()``, through ``scaler`` when there is one."""
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def optimizer_step(self, optimizer, scaler=None, *, clip_grad_norm: float | None = None) -> None:
        """Clip the gradients' global norm (when asked), step, and clear the gradients."""
        import torch

        if clip_grad_norm is not None:
            if scaler is not None:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # -- processes ---------------------------------------------------------------------------------
    def wrap(self, model):
        """``model`` inside DistributedDataParallel when there are several processes."""
        return distributed.wrap(model, self.world, self.device)

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sums of ``values`` over the processes."""
        return distributed.all_sum(values, self.world, self.device)
