"""Process-group setup under ``torchrun`` and the sharding / reduction helpers training needs.

Everything degrades to a single process when ``torchrun`` did not start us, so the training loop
has one code path. Sharding follows ``DistributedSampler`` for training (pad the permutation by
repeating its head so that every rank runs the same number of steps, as DDP's collective
all-reduce requires) but not for validation: there each sample must be counted exactly once, so
ranks take disjoint strided slices without padding and the counts are summed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: not distributed

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files, logs and talks to MLflow."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def launched_by_torchrun() -> bool:
    """torchrun (and torch.distributed.run) export these for every worker."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(device: str, env_local_rank: int = 0) -> torch.device:
    """``auto`` -> the local GPU when there is one, else CPU; ``cuda`` -> this rank's GPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if device == "cuda":
            return torch.device("cuda", env_local_rank % torch.cuda.device_count())
    return torch.device(device)


def init_distributed(device: str) -> tuple[DistEnv, torch.device]:
    """Join the torchrun job (NCCL for GPUs, gloo for CPU) or return a single-process env."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        local = int(os.environ.get("LOCAL_RANK", 0))
        return DistEnv(), resolve_device(device, local)
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            dist.init_process_group(backend=backend, device_id=dev)
        else:
            dist.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local, backend=backend), dev


def shutdown_distributed(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def train_shard(permutation: np.ndarray, env: DistEnv) -> np.ndarray:
    """This rank's part of an epoch permutation, padded like ``DistributedSampler``.

    The permutation is extended by its own head to a multiple of ``world_size`` so every rank has
    the same number of samples (and hence of steps), then rank r takes items r, r+W, r+2W, ...
    """
    n = len(permutation)
    w = env.world_size
    total = -(-n // w) * w
    if total > n:
        reps = -(-total // n)
        permutation = np.concatenate([permutation] * reps)[:total]
    return permutation[env.rank : total : w]


def eval_shard(num_samples: int, env: DistEnv) -> np.ndarray:
    """Disjoint, unpadded slices: together the ranks see every sample exactly once."""
    return np.arange(env.rank, num_samples, env.world_size, dtype=np.int64)


def batches(indices: np.ndarray, batch_size: int, *, train: bool) -> list[np.ndarray]:
    """Split into consecutive batches.

    In training a trailing batch of one sample is merged into the one before it: BatchNorm
    cannot normalise a single sample, and dropping it would silently skip data.
    """
    out = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    if train and len(out) > 1 and len(out[-1]) == 1:
        out[-2] = np.concatenate([out[-2], out.pop()])
    return out


def all_reduce_sum(values: list[float], env: DistEnv, device: torch.device) -> list[float]:
    """Sum a few scalars over ranks (float64 so that counts stay exact)."""
    if not env.distributed:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()
