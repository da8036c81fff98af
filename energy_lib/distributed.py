"""Data-parallel training under `torchrun --nproc_per_node N` (DistributedDataParallel).

Outside torchrun (WORLD_SIZE unset or 1) everything here is a no-op and training is the plain
single-process loop. Under torchrun each process trains on its share of every global batch
(`data.BatchIterator(rank=, world_size=)`), gradients are averaged by DDP, and only rank 0 tracks
energies and writes metrics and checkpoints; the others wait at a barrier. Backend: NCCL on GPUs,
gloo on CPUs (what the tests use).

BatchNorm is not synchronised (no SyncBatchNorm, as in the paper's single-GPU code): each process
normalises its share of the global batch with its own statistics, and rank 0's running statistics
are broadcast to all processes at the start of every epoch (`sync_buffers`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .config import resolve_device


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> Dist:
    """Join the torchrun process group if there is one; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist(0, 1, resolve_device(device))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    return Dist(dist.get_rank(), dist.get_world_size(), dev)


class AdversarialDDP(DistributedDataParallel):
    """DDP whose eval-mode forwards go straight to the module.

    Attacks run the model in eval mode and differentiate w.r.t. the input only; routed through
    DDP they would arm its gradient synchronisation for a backward pass that never comes.
    """

    def forward(self, *args, **kwargs):
        if not self.training:
            return self.module(*args, **kwargs)
        return super().forward(*args, **kwargs)


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    if not d.enabled:
        return model
    return AdversarialDDP(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def any_rank(flag: bool, d: Dist | None) -> bool:
    """True on every process if `flag` is true on any (so that all of them stop together)."""
    if d is None or not d.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def mean_over_ranks(values: dict, d: Dist) -> dict:
    """Average a dict of floats (None stays None) over the processes."""
    if not d.enabled:
        return values
    keys = [k for k, v in values.items() if v is not None]
    # on the process's device: NCCL reduces CUDA tensors only (gloo takes CPU ones)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return {**values, **{k: v / d.world_size for k, v in zip(keys, t.tolist())}}


def sync_buffers(model: torch.nn.Module, d: Dist) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics).

    DDP broadcasts buffers only at train-mode forwards, but the eval-mode attacks read them first;
    syncing at each epoch start makes what a resumed run sees equal to an uninterrupted one.
    """
    if d.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
