"""Reproducible execution: seeds derived from ``(seed, epoch, rank)`` and deterministic kernels.

Why derived seeds: an epoch's random choices (shuffle order, crops, rotations, dropout) then do
not depend on generator state carried over from earlier epochs, so a run resumed from
``last.pt`` replays exactly the epochs an uninterrupted run would have run.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import torch


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers, well mixed (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]) >> 1


def deterministic_kernels(mode: bool, warn_only: bool = False, compiling: bool = False) -> None:
    """``torch.use_deterministic_algorithms``, without importing Inductor for an eager run.

    The public call imports ``torch._inductor`` (and with it Dynamo: 1.6 s on a 2-core machine,
    paid by every training stage) only to set Inductor's own flag. An eager run needs only ATen's
    switch; a run that compiles, or one where Inductor is already loaded, gets the public call.
    """
    public = compiling or "torch._inductor.config" in sys.modules
    if public or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


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
        compiling = bool(getattr(cfg, "compile", False) or getattr(cfg, "cuda_graphs", False))
        deterministic_kernels(True, warn_only=device.type == "cuda", compiling=compiling)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return prev


def restore_execution_mode(prev: dict[str, Any]) -> None:
    torch.set_num_threads(prev["threads"])
    deterministic_kernels(prev["deterministic"], warn_only=prev["warn_only"])
    torch.backends.cudnn.benchmark = prev["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = prev["cudnn_deterministic"]
