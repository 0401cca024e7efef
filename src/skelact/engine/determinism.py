"""Reproducible execution: seeds derived from ``(seed, epoch, rank)`` and deterministic kernels.

Why derived seeds: an epoch's random choices (shuffle order, crops, rotations, dropout) then do
not depend on generator state carried over from earlier epochs, so a run resumed from
``last.pt`` replays exactly the epochs an uninterrupted run would have run.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers, well mixed (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]) >> 1


def set_execution_mode(cfg: Any, device: torch.device) -> dict[str, Any]:
    """Threads, deterministic kernels, cuDNN flags. Returns the previous values to restore."""
    prev = {
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
    }
    threads = cfg.threads or (1 if cfg.deterministic and device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(int(threads))
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # On CUDA a few backward kernels (max pooling) have no deterministic version: warn there
        # rather than refuse to train; on CPU everything used is deterministic, so be strict.
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return prev


def restore_execution_mode(prev: dict[str, Any]) -> None:
    torch.set_num_threads(prev["threads"])
    torch.use_deterministic_algorithms(prev["deterministic"], warn_only=prev["warn_only"])
    torch.backends.cudnn.benchmark = prev["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = prev["cudnn_deterministic"]
