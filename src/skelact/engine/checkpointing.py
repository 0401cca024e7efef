"""Checkpoints: the project's own format, written atomically, loadable with ``weights_only=True``.

A checkpoint holds only tensors and plain Python data, so loading one never runs pickled code.
RNG states are converted accordingly (NumPy's state as ints and lists, Python's as lists).
Files are written to a temporary name in the same folder and renamed over the target, so a
crash or kill never leaves a half-written ``last.pt`` that would poison ``--resume``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelact.atomic import atomic_write

FORMAT = "skelact"
FORMAT_VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def capture_rng_state() -> dict[str, Any]:
    """Torch (CPU and CUDA), NumPy legacy global and Python RNG states as plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(py_version), "state": list(py_state), "gauss": py_gauss},
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            np.asarray(n["keys"], dtype=np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def make_checkpoint(
    model: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    epoch: int = 0,
    config: dict[str, Any] | None = None,
    best: dict[str, Any] | None = None,
    mlflow_run_id: str | None = None,
) -> dict[str, Any]:
    """The own checkpoint dict (format of the contract). ``model`` must be the bare module."""
    spec = getattr(model, "skelact_spec", None) or {}
    if "name" not in spec:
        raise ValueError("model has no skelact_spec; build it with skelact.models.build_model")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"name": spec["name"], "options": dict(spec.get("options", {}))},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "epoch": int(epoch),
        "rng": capture_rng_state(),
        "config": config or {},
        "best": best or {},
        "mlflow_run_id": mlflow_run_id,
    }


def load_own_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load and check an own checkpoint (``weights_only=True``), with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, or one with pickled code (weights_only refuses it)
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a skelact checkpoint (no format='{FORMAT}' key)")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format version {ckpt.get('format_version')} is not supported "
            f"(this skelact reads version {FORMAT_VERSION})"
        )
    return ckpt


def read_checkpoint_any(path: str | Path) -> dict | None:
    """The raw dict of any checkpoint that ``weights_only`` can load (None if it cannot)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return obj if isinstance(obj, dict) else None
