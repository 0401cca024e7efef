"""Checkpoints: the project's own format, written atomically, loadable with ``weights_only=True``.

A checkpoint holds only tensors and plain Python data, so loading one never runs pickled code.
RNG states are converted accordingly (NumPy's state as ints and lists, Python's as lists).
Files are written to a temporary name in the same folder and renamed over the target, so a
crash or kill never leaves a half-written ``last.pt`` that would poison ``--resume``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelact.atomic import atomic_write
from skelact.engine.safety import TrainingError
from skelact.errors import bounded
from skelact.models.checkpoint import (
    OWN_FORMAT_VERSION,
    CheckpointError,
    is_own_checkpoint,
    own_checkpoint,
    read_checkpoint,
)


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
    """The models' own checkpoint plus everything an exact resume needs."""
    return own_checkpoint(
        model,
        optimizer=optimizer.state_dict() if optimizer is not None else None,
        scheduler=scheduler.state_dict() if scheduler is not None else None,
        scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        epoch=int(epoch),
        rng=capture_rng_state(),
        config=config or {},
        best=best or {},
        mlflow_run_id=mlflow_run_id,
    )


def _unreadable_reason(exc: BaseException) -> str:
    """One short line for why ``torch.load`` failed (its own message is a paragraph)."""
    if isinstance(exc, EOFError):
        return "the file ends early (truncated, or still being written)"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:  # a hostile or corrupt pickle: say what it asked
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            detail = rest or (lines[i + 1] if i + 1 < len(lines) else "corrupt")
            return f"not a weights-only PyTorch file ({bounded(detail, 100)})"
    if isinstance(exc, KeyError) or not lines:
        return "not a PyTorch checkpoint"
    return bounded(lines[0], 100)


def read_checkpoint_file(path: str | Path) -> dict:
    """:func:`read_checkpoint` with a one-line reason for a folder, an empty or a corrupt file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, expected a checkpoint file (.pt/.pth)")
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"{path}: is empty (0 bytes), not a checkpoint")
    try:
        return read_checkpoint(path)
    except CheckpointError as exc:
        if exc.__cause__ is None:
            raise
        reason = _unreadable_reason(exc.__cause__)
        raise CheckpointError(f"{path}: cannot read the checkpoint: {reason}") from exc.__cause__


def load_own_checkpoint(path: str | Path) -> dict:
    """Read a project checkpoint for resuming; anything else is an error naming the file."""
    ckpt = read_checkpoint_file(path)
    if not is_own_checkpoint(ckpt):
        raise CheckpointError(f"{path} is not a skelact checkpoint (no format='skelact' key)")
    if ckpt.get("format_version") != OWN_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt.get('format_version')} is not supported "
            f"(this skelact reads version {OWN_FORMAT_VERSION})"
        )
    return ckpt


# Config fields that define the optimisation trajectory: resuming with other values would not
# continue the same run, so they must match the checkpoint's.
TRAJECTORY_FIELDS = (
    "model", "seed", "batch_size", "base_batch_size", "scale_lr", "lr", "weight_decay",
    "optimizer", "momentum", "nesterov", "lr_steps", "lr_gamma", "lr_schedule", "clip_len",
    "train_min_ratio", "train_max_ratio", "min_len", "val_clip_ratio", "rotate", "decay_mult",
    "model_options", "amp", "tf32", "drop_last", "with_score", "scale_range",
)  # fmt: skip


def check_resume_config(saved: dict, cfg: Any, path: Path) -> None:
    """Refuse to resume with settings that would change the trajectory, naming each change."""
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {getattr(cfg, k)!r}"
        for k in TRAJECTORY_FIELDS
        if k in saved and saved.get(k) != getattr(cfg, k)
    ]
    if diffs:
        raise TrainingError(
            f"cannot resume from {path}: the run was started with other settings ("
            + "; ".join(diffs)
            + "). Use the same options, or a new --out-dir."
        )


def read_metrics_log(path: Path, upto_epoch: int | None = None) -> list[dict]:
    """Records of ``metrics.jsonl`` (optionally only epochs <= upto_epoch)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if upto_epoch is None or rec["epoch"] <= upto_epoch:
                records.append(rec)
    return records
