"""Several GPUs through torch's DistributedDataParallel, started with torchrun (Kaggle's 2 x T4:
``torchrun --nproc_per_node 2 -m steelkit train ...``, or ``steelkit.launch`` from a notebook). One
process per device; every rank validates its share, rank 0 gathers the figures, writes checkpoints and
prints."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None) -> Context:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world_size == 1:
        return Context(device=torch.device(device))
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Context(rank=dist.get_rank(), world_size=world_size, device=torch.device(device))


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()


def teardown(context: Context) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def gather(context: Context, value) -> list | None:
    """Every rank's picklable ``value``, in rank order, on rank 0 (None elsewhere); [value] in one process."""
    if not context.distributed:
        return [value]
    gathered = [None] * context.world_size if context.is_rank_zero else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def broadcast_buffers(model: torch.nn.Module, context: Context) -> None:
    """Give every rank rank 0's buffers (batch-norm statistics): DDP broadcasts them only at the start of
    a training forward, so after an epoch each rank holds the statistics of its own last batch."""
    if context.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


def broadcast_object(context: Context, value):
    """Rank 0's picklable ``value`` on every rank (``value`` itself in one process)."""
    if not context.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
