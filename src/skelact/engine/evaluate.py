"""Evaluation of a checkpoint on a pickle: ``skelact test``.

The same inference routine (:func:`infer`) serves validation during training, so the numbers a
run logs and the numbers ``skelact test`` reports on its checkpoint come from one code path.
Outputs: metrics.json (numbers only: a DVC metrics file), eval_info.json (model, files, run id),
per_class.csv, confusion.csv, confusion.png, predictions.csv, and scores.npz (the raw class
scores by sample, which ``skelact fuse`` combines across streams).

A checkpoint whose weights are not finite (a diverged run) is refused rather than scored, a
label outside the model's classes is an error naming the sample, and data of another joint count
or channel count than the model's is an error naming both. Class names come from the data's
``classes.txt`` (written by ``skelact import``), else from the names the training run recorded,
else they are NTU's action names.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelact.atomic import remove_stale_temps
from skelact.engine.checkpointing import read_checkpoint_file
from skelact.engine.recipes import recipe_for
from skelact.engine.results import class_names, write_outputs
from skelact.engine.safety import check_finite_weights
from skelact.errors import SkelactError
from skelact.locking import output_lock
from skelact.models import built_layout
from skelact.models.checkpoint import build_from_loaded, is_own_checkpoint


class EvaluationError(SkelactError):
    """The data or the checkpoint given to ``skelact test`` / ``predict`` cannot be scored."""


def autocast_context(device: torch.device, amp: str):
    """bf16/fp16 autocast on CUDA; a no-op elsewhere (AMP is a CUDA feature here)."""
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


@torch.no_grad()
def infer(
    model: torch.nn.Module,
    data: Any,
    sampler: Any,
    indices: np.ndarray,
    batch_size: int,
    device: torch.device,
    amp: str = "none",
) -> np.ndarray:
    """Float32 logits (len(indices) x K) for the given samples, in eval mode, val sampling."""
    was_training = model.training
    model.eval()
    outs = []
    try:
        for start in range(0, len(indices), batch_size):
            idx = indices[start : start + batch_size]
            x = sampler(data, idx)
            with autocast_context(device, amp):
                logits = model(x.to(device, non_blocking=True))
            outs.append(logits.float().cpu())
    finally:
        model.train(was_training)
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(outs).numpy()


def resolve_class_names(
    num_classes: int,
    *,
    data: str | Path | None = None,
    raw_ckpt: dict | None = None,
    checkpoint: str | Path = "checkpoint",
) -> list[str]:
    """The names of the model's classes, by index.

    From the ``classes.txt`` beside ``data`` (it must list ``num_classes`` names: an error names
    the file), else from the names the training run recorded in the checkpoint (those of its
    data's classes.txt), else NTU's action names.
    """
    from skelact.data.classes import find_classes, read_classes

    path = find_classes(data) if data is not None else None
    if path is not None:
        return read_classes(path, num_classes)
    recorded = (raw_ckpt or {}).get("class_names")
    if recorded:
        if len(recorded) != num_classes:
            raise EvaluationError(
                f"{checkpoint}: records {len(recorded)} class names for a model of "
                f"{num_classes} classes"
            )
        return [str(name) for name in recorded]
    return class_names(num_classes)


def check_input(data: Any, options: dict[str, Any], checkpoint: str) -> None:
    """The data's layout, joints and channels are the ones the model was built for (as far as
    the checkpoint records them)."""
    facts = (("layout", data.layout), ("num_joints", data.num_joints),
             ("in_channels", data.num_channels))  # fmt: skip
    for key, have in facts:
        want = options.get(key)
        if want is not None and str(want) != str(have):
            raise EvaluationError(
                f"{data.source}: {key.replace('_', ' ')} {have} ({data.layout}, {data.dims}-D"
                f"{' + score' if data.with_score else ''}), but the model in {checkpoint} takes "
                f"{want}; give it data of the training run's layout and format"
            )


@dataclass
class EvalConfig:
    """Settings of ``skelact test``."""

    checkpoint: str
    data: str
    out_dir: str
    model: str | None = None  # required for SkelAct/MMAction2 checkpoints
    split: str | None = None  # pyskl files: e.g. 'xsub_val'
    batch_size: int = 128
    device: str = "auto"
    clip_len: int | None = None  # None: from the checkpoint's config, else the recipe
    clip_ratio: float | None = None  # None: from the checkpoint's config, else the recipe
    amp: str = "none"
    track: bool = True
    tracking_uri: str | None = None
    experiment: str = "skelact"
    child_run: bool = False  # True: a new run linked to the training run instead of the same run
    quiet: bool = False


@dataclass
class EvalResult:
    top1: float
    top5: float
    mean_class_accuracy: float
    num_samples: int
    num_classes: int
    model: str
    checkpoint: str
    data: str
    clip_len: int
    clip_ratio: float
    seconds: float
    out_dir: str
    mlflow_run_id: str | None = None
    files: dict[str, str] = field(default_factory=dict)


def load_model(
    checkpoint: str | Path, model: str | None = None, clip_len: int | None = None
) -> tuple[torch.nn.Module, dict, str]:
    """Model, the raw checkpoint dict (for config/run id) and the model name.

    Refuses a file that is not a readable checkpoint, and weights that are not finite.
    """
    raw = read_checkpoint_file(checkpoint)
    overrides: dict[str, Any] = {}
    if model is not None:
        overrides["name"] = model
    if not is_own_checkpoint(raw) and clip_len is not None:
        overrides["clip_len"] = clip_len  # foreign checkpoints do not record it
    net = build_from_loaded(raw, checkpoint, **overrides)
    check_finite_weights(net, str(checkpoint))
    spec = getattr(net, "skelact_spec", {}) or {}
    return net, raw, str(spec.get("name") or model)


def check_labels(data: Any, num_classes: int, checkpoint: str) -> None:
    """Every label in [0, num_classes) of the model, or an error naming the first bad sample."""
    labels = np.asarray(data.labels)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        first = int(bad[0])
        raise EvaluationError(
            f"{data.source}: sample {data.names[first]} has label {int(labels[first])}, but the "
            f"model in {checkpoint} has {num_classes} classes ({bad.size} such sample(s))"
        )


def sampling_for(name: str, raw_ckpt: dict, clip_len: int | None, clip_ratio: float | None):
    """Val sampling: explicit values, else the training run's config, else the recipe."""
    train_cfg = raw_ckpt.get("config") or {}
    recipe = recipe_for(name)
    # Own checkpoints keep the builder options under 'model'; exported MMAction2 files in 'meta'.
    options = ((raw_ckpt.get("model") or {}).get("options")
               or (raw_ckpt.get("meta") or {}).get("skelact_options") or {})  # fmt: skip
    if clip_len is None:
        clip_len = train_cfg.get("clip_len") or options.get("clip_len") or recipe["clip_len"]
    if clip_ratio is None:
        clip_ratio = train_cfg.get("val_clip_ratio") or recipe["val_clip_ratio"]
    return int(clip_len), float(clip_ratio)


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Run ``cfg.checkpoint`` on ``cfg.data`` with val sampling and write the result files."""
    from skelact.data.dataset import SkeletonSet
    from skelact.data.transforms import ClipSampler
    from skelact.engine.distributed import resolve_device
    from skelact.engine.train import guess_benchmark

    t0 = time.perf_counter()
    out_dir = Path(cfg.out_dir)
    with output_lock(out_dir, "test"):
        remove_stale_temps(out_dir)
        device = resolve_device(cfg.device)
        model, raw, name = load_model(cfg.checkpoint, cfg.model, cfg.clip_len)
        model.to(device)
        clip_len, clip_ratio = sampling_for(name, raw, cfg.clip_len, cfg.clip_ratio)
        own = is_own_checkpoint(raw)
        train_cfg = (raw.get("config") or {}) if own else {}
        data = SkeletonSet.from_file(cfg.data, cfg.split,
                                     with_score=bool(train_cfg.get("with_score")))  # fmt: skip
        spec = getattr(model, "skelact_spec", {}) or {}
        options = spec.get("options", {})
        check_input(data, options, str(cfg.checkpoint))
        num_classes = int(options.get("num_classes", 0))
        classes = None
        if num_classes:
            check_labels(data, num_classes, cfg.checkpoint)
            classes = resolve_class_names(num_classes, data=cfg.data, raw_ckpt=raw,
                                          checkpoint=cfg.checkpoint)  # fmt: skip
        labels = np.asarray(data.labels)  # from the host copy, before the upload
        if device.type == "cuda":
            data = data.to(device)
        stream = str(train_cfg.get("stream") or "joint")  # foreign checkpoints: joints
        sampler = ClipSampler(clip_len, train=False, clip_ratio=clip_ratio, dims=data.dims,
                              device=device, stream=stream,
                              parents=built_layout(model).parents)  # fmt: skip
        logits = infer(model, data, sampler, np.arange(len(data)), cfg.batch_size, device, cfg.amp)
        if classes is None:  # no class count recorded: the model's output decides it
            classes = resolve_class_names(logits.shape[1], data=cfg.data, raw_ckpt=raw,
                                          checkpoint=cfg.checkpoint)  # fmt: skip
        info = {
            "model": name,
            "stream": stream,
            "benchmark": train_cfg.get("benchmark") or guess_benchmark(cfg.data, cfg.split),
            "seed": train_cfg.get("seed"),
            "checkpoint": str(cfg.checkpoint),
            "data": str(cfg.data),
            "split": cfg.split,
            "clip_len": clip_len,
            "clip_ratio": clip_ratio,
            "checkpoint_epoch": raw.get("epoch"),
        }
        metrics, files = write_outputs(out_dir, logits, labels, list(data.names), info, classes)
        seconds = time.perf_counter() - t0
        tracked_run = _track_eval(cfg, raw.get("mlflow_run_id") if own else None, name, metrics,
                                  files)  # fmt: skip
    return EvalResult(
        top1=metrics["top1"], top5=metrics["top5"],
        mean_class_accuracy=metrics["mean_class_accuracy"], num_samples=metrics["num_samples"],
        num_classes=metrics["num_classes"], model=name, checkpoint=str(cfg.checkpoint),
        data=str(cfg.data), clip_len=clip_len, clip_ratio=clip_ratio, seconds=seconds,
        out_dir=str(out_dir), mlflow_run_id=tracked_run, files=files,
    )  # fmt: skip


def _track_eval(
    cfg: EvalConfig, run_id: str | None, name: str, metrics: dict, files: dict[str, str]
) -> str | None:
    """Log ``eval_*`` metrics and the result files into the training run (when it has one)."""
    if not cfg.track:
        return None
    from skelact.tracking import open_eval_run

    with open_eval_run(
        enabled=True,
        experiment=cfg.experiment,
        run_id=run_id,
        child=cfg.child_run,
        run_name=None if run_id else f"test-{name}",
        tracking_uri=cfg.tracking_uri,
        tags={"model": name, "eval.data": cfg.data},
        quiet=cfg.quiet,
    ) as tracker:
        tracker.log_metrics(
            {
                "eval_top1": metrics["top1"],
                "eval_top5": metrics["top5"],
                "eval_mean_class_accuracy": metrics["mean_class_accuracy"],
                "eval_num_samples": metrics["num_samples"],
            }
        )
        for path in files.values():
            tracker.log_artifact(path, artifact_path="eval")
        return tracker.run_id
