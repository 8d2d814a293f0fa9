"""Data-parallel training under ``torchrun``: one process per device, gradients all-reduced.

``torchrun --nproc_per_node N -m tinyzoo train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init` turns them into a :class:`World`. Under ``torchrun`` even one
process joins a process group (nccl on CUDA), so ``torchrun --nproc_per_node 1`` runs every
collective a multi-GPU run does. Without torchrun the world is one process and nothing here
touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    launched: bool = False  # started by torchrun (which sets TORCHELASTIC_RUN_ID), whatever the world size

    @property
    def distributed(self) -> bool:
        """Whether this process is (or joins) a process group: more than one process, or any under torchrun."""
        return self.world_size > 1 or self.launched

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run directory and prints progress."""
        return self.rank == 0


def from_environment() -> World:
    """The world ``torchrun`` describes in the environment (a single process when it does not)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    launched = "TORCHELASTIC_RUN_ID" in os.environ
    if size <= 1 and not launched:
        return World()
    rank = int(os.environ.get("RANK", "0"))
    return World(rank, size, int(os.environ.get("LOCAL_RANK", rank)), launched=launched)


def init(device) -> World:
    """Join the process group when launched by ``torchrun``: nccl on CUDA, gloo on CPU.

    On CUDA each process takes the GPU numbered by its local rank. Returns the world.
    """
    import torch
    import torch.distributed as dist

    world = from_environment()
    if not world.distributed:
        return world
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=world.rank, world_size=world.world_size)
    return World(world.rank, world.world_size, world.local_rank, backend, world.launched)


def device_for(world: World, device):
    """The device this rank trains on (``cuda:LOCAL_RANK`` under torchrun on CUDA)."""
    import torch

    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def wrap(model, world: World, device):
    """``model`` inside DistributedDataParallel when the world has more than one process."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else world.local_rank] if device.type == "cuda" else None
    # Frozen stages leave parameters without gradients; buffers (BN stats) are synced from rank 0.
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False, broadcast_buffers=True)


def unwrap(model):
    """The module inside a DistributedDataParallel (or the model itself)."""
    return getattr(model, "module", model)


def all_sum(values: list[float], world: World, device) -> list[float]:
    """Element-wise sum of ``values`` over every process (the values themselves in one process)."""
    if not world.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_gather_rows(tensor, world: World):
    """Rows of ``tensor`` from every process, concatenated in rank order (equal row counts)."""
    if not world.distributed:
        return tensor
    import torch
    import torch.distributed as dist

    parts = [torch.empty_like(tensor) for _ in range(world.world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def barrier(world: World) -> None:
    """Wait for every process (nothing in one process)."""
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj, world: World):
    """Rank 0's ``obj`` on every process."""
    if not world.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(world: World) -> None:
    """Leave the process group."""
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
