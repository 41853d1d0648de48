"""Devices and distributed data parallel training (launched by ``torchrun``).

``torchrun --nproc-per-node N -m mobilenet train ...`` starts N processes; each reads its rank
from the environment. NCCL is used on GPUs, gloo on CPUs. Under ``torchrun --max-restarts K``
a failed process makes torchrun restart the whole group with the same command; the restarted
processes continue from the run's last checkpoint (``Runtime.restarts`` counts the restarts).
``--batch-size`` is the global batch: every process takes an equal slice of each global batch,
and which images form a global batch depends only on the seed and the epoch, never on the
number of processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn as dist_nn
from torch import nn
from torch.distributed.rendezvous import rendezvous
from torch.utils.data import Sampler

from mobilenet.devices import choose_device
from mobilenet.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device
    restarts: int = 0
    """How many times ``torchrun --max-restarts`` has restarted the group (0: the first attempt)."""

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(preference: str = "auto") -> Runtime:
    """Join the process group when launched by torchrun, and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    device = choose_device(preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        _join("nccl" if device.type == "cuda" else "gloo", restarts)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Runtime(rank, world_size, device, restarts)


def _join(backend: str, restarts: int) -> None:
    """Join the group torchrun describes, under a key prefix of its own attempt.

    torchrun's store outlives a restart: without the prefix a restarted process can read the
    addresses the killed attempt published (gloo then connects to a dead port, or waits forever).
    """
    store, rank, world_size = next(rendezvous("env://"))
    attempt = dist.PrefixStore(f"mobilenet/attempt{restarts}", store)
    dist.init_process_group(backend, store=attempt, rank=rank, world_size=world_size)


def teardown() -> None:
    """Leave the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all processes (a no-op for one process)."""
    if dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_buffers(module: nn.Module) -> None:
    """Every process takes process 0's buffers of ``module`` (a no-op for one process).

    For the EMA: it averages BatchNorm's running statistics, which each process updates from its
    own images, so without this each process's EMA drifts from process 0's, the one checkpoints
    keep. Synchronised after every epoch, every process validates the EMA that is saved, and a
    group restarted from a checkpoint continues exactly as the uninterrupted one.
    """
    if dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def all_succeeded(ok: bool, device: torch.device) -> bool:
    """Whether every process reports ``ok``; every process waits here for all the others."""
    failures = all_reduce_sum(torch.tensor([0.0 if ok else 1.0], device=device))
    return bool(failures.item() == 0)


class GlobalBatchSampler(Sampler[list[int]]):
    """Batches of this process's share of a seeded global order.

    Each epoch shuffles all indices with a generator seeded by ``(seed, epoch)``; the order is
    cut into global batches of ``global_batch`` images and process ``rank`` takes the
    ``rank``-th equal slice of each. The last incomplete global batch is dropped when training
    (every process must take the same number of steps).
    """

    def __init__(
        self, size: int, global_batch: int, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True
    ) -> None:
        if global_batch % world_size:
            raise ConfigError(f"--batch-size {global_batch} must be divisible by the {world_size} processes")
        if shuffle and size < global_batch:
            raise ConfigError(f"--batch-size {global_batch} is larger than the {size} training images")
        self.size, self.global_batch, self.rank, self.world_size = size, global_batch, rank, world_size
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self.local_batch = global_batch // world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order to produce."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.shuffle:
            return self.size // self.global_batch
        return -(-self.size // self.global_batch)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        for start in range(0, len(self) * self.global_batch, self.global_batch):
            batch = order[start : start + self.global_batch]
            if self.shuffle:
                yield batch[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]
            else:  # evaluation: every image once, spread over the processes
                yield batch[self.rank :: self.world_size]


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics cover the global batch, on any device and backend.

    ``torch.nn.SyncBatchNorm`` only runs on GPUs; this one all-reduces each layer's per-channel
    sum, sum of squares and count (differentiably), so gloo on CPUs works too.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        wide = x.double()  # E[x^2] - E[x]^2 loses too much in float32 on small batches
        count = wide.new_tensor([x.numel() / channels])
        stats = dist_nn.all_reduce(torch.cat([wide.sum((0, 2, 3)), (wide * wide).sum((0, 2, 3)), count]))
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp(min=0)
        mean, var, total = mean.to(x.dtype), var.to(x.dtype), float(total)
        with torch.no_grad():
            momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked + 1)
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(var.detach() * total / (total - 1), momentum)
            self.num_batches_tracked += 1
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale[None, :, None, None] + (self.bias - mean * scale)[None, :, None, None]


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Swap every ``BatchNorm2d`` for a synchronised one (torch's on CUDA, ours elsewhere)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = DistributedBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine)
            sync.load_state_dict(child.state_dict())
            setattr(module, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return module
