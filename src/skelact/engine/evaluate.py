"""Evaluation of a checkpoint on a pickle: ``skelact test``.

The same inference routine (:func:`infer`) serves validation during training, so the numbers a
run logs and the numbers ``skelact test`` reports on its checkpoint come from one code path.
Outputs: metrics.json, per_class.csv, confusion.csv, confusion.png, predictions.csv.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelact.atomic import atomic_write, atomic_write_text
from skelact.engine import metrics as M
from skelact.engine.recipes import recipe_for
from skelact.models.checkpoint import build_from_loaded, is_own_checkpoint, read_checkpoint


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


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_names(num_classes: int) -> list[str]:
    """NTU action names for class indices (NTU 60 uses the first 60 of the 120)."""
    from skelact.data.ntu import action_names

    names = list(action_names(min(num_classes, 120)))
    return names + [f"class {i}" for i in range(len(names), num_classes)]


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


def _load_model(cfg: EvalConfig) -> tuple[torch.nn.Module, dict, str]:
    """Model, the raw checkpoint dict (for config/run id) and the model name."""
    raw = read_checkpoint(cfg.checkpoint)
    overrides: dict[str, Any] = {}
    if cfg.model is not None:
        overrides["name"] = cfg.model
    if not is_own_checkpoint(raw) and cfg.clip_len is not None:
        overrides["clip_len"] = cfg.clip_len  # foreign checkpoints do not record it
    model = build_from_loaded(raw, cfg.checkpoint, **overrides)
    spec = getattr(model, "skelact_spec", {}) or {}
    name = spec.get("name") or cfg.model
    return model, raw, str(name)


def sampling_for(name: str, raw_ckpt: dict, clip_len: int | None, clip_ratio: float | None):
    """Val sampling: explicit values, else the training run's config, else the recipe."""
    train_cfg = raw_ckpt.get("config") or {}
    recipe = recipe_for(name)
    options = (raw_ckpt.get("model") or {}).get("options") or {}
    if clip_len is None:
        clip_len = train_cfg.get("clip_len") or options.get("clip_len") or recipe["clip_len"]
    if clip_ratio is None:
        clip_ratio = train_cfg.get("val_clip_ratio") or recipe["val_clip_ratio"]
    return int(clip_len), float(clip_ratio)


def write_outputs(
    out_dir: Path,
    logits: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    summary: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Write the five result files atomically; return the metrics dict and the file paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    num_classes = logits.shape[1]
    probs = softmax(logits.astype(np.float64))
    top1, top5 = M.topk_accuracy(logits, labels, (1, 5))
    preds = logits.argmax(axis=1)
    conf = M.confusion_matrix(labels, preds, num_classes)
    support, acc = M.per_class_accuracy(conf)
    metrics = {
        "top1": top1,
        "top5": top5,
        "mean_class_accuracy": M.mean_class_accuracy(conf),
        "num_samples": int(len(labels)),
        "num_classes": int(num_classes),
        "classes_present": int((support > 0).sum()),
        **summary,
    }
    action = class_names(num_classes)
    files = {}

    files["metrics"] = str(out_dir / "metrics.json")
    atomic_write_text(files["metrics"], json.dumps(metrics, indent=2) + "\n")

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "action", "support", "correct", "accuracy"])
    for c in np.flatnonzero(support > 0):
        w.writerow([int(c), action[c], int(support[c]), int(conf[c, c]), f"{acc[c]:.6f}"])
    files["per_class"] = str(out_dir / "per_class.csv")
    atomic_write_text(files["per_class"], buf.getvalue())

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true\\pred", *range(num_classes)])
    for c in range(num_classes):
        w.writerow([c, *conf[c].tolist()])
    files["confusion"] = str(out_dir / "confusion.csv")
    atomic_write_text(files["confusion"], buf.getvalue())

    k = min(5, num_classes)
    top = M.topk_indices(logits, k)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["sample", "label", "pred", "correct"]
        + [f"top{i + 1}_class" for i in range(k)]
        + [f"top{i + 1}_score" for i in range(k)]
    )
    for i, name in enumerate(names):
        w.writerow(
            [name, int(labels[i]), int(preds[i]), int(preds[i] == labels[i])]
            + top[i].tolist()
            + [f"{probs[i, j]:.6f}" for j in top[i]]
        )
    files["predictions"] = str(out_dir / "predictions.csv")
    atomic_write_text(files["predictions"], buf.getvalue())

    files["confusion_png"] = str(out_dir / "confusion.png")
    plot_confusion(conf, Path(files["confusion_png"]), title=summary.get("model", ""))
    return metrics, files


def plot_confusion(conf: np.ndarray, path: Path, title: str = "") -> None:
    """Row-normalised heat map (rows: true class), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = conf.sum(axis=1, keepdims=True)
    norm = np.divide(conf, np.maximum(rows, 1), dtype=np.float64)
    n = conf.shape[0]
    size = min(4 + n * 0.12, 14)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(norm, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion (row-normalised) {title}".strip())
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Run ``cfg.checkpoint`` on ``cfg.data`` with val sampling and write the result files."""
    from skelact.data.dataset import SkeletonSet
    from skelact.data.transforms import ClipSampler
    from skelact.engine.distributed import resolve_device

    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    model, raw, name = _load_model(cfg)
    model.to(device)
    clip_len, clip_ratio = sampling_for(name, raw, cfg.clip_len, cfg.clip_ratio)
    data = SkeletonSet.from_file(cfg.data, cfg.split)
    num_classes = int(getattr(model, "skelact_spec", {}).get("options", {}).get("num_classes", 0))
    if num_classes and data.num_classes > num_classes:
        raise ValueError(
            f"{cfg.data}: labels go up to {data.num_classes - 1} but the model in "
            f"{cfg.checkpoint} has {num_classes} classes"
        )
    labels = np.asarray(data.labels)  # from the host copy, before the upload
    if device.type == "cuda":
        data = data.to(device)
    sampler = ClipSampler(clip_len, train=False, clip_ratio=clip_ratio, device=device)
    logits = infer(model, data, sampler, np.arange(len(data)), cfg.batch_size, device, cfg.amp)
    run_id = raw.get("mlflow_run_id") if is_own_checkpoint(raw) else None
    summary = {
        "model": name,
        "checkpoint": str(cfg.checkpoint),
        "data": str(cfg.data),
        "split": cfg.split,
        "clip_len": clip_len,
        "clip_ratio": clip_ratio,
        "checkpoint_epoch": raw.get("epoch"),
    }
    out_dir = Path(cfg.out_dir)
    metrics, files = write_outputs(out_dir, logits, labels, list(data.names), summary)
    seconds = time.perf_counter() - t0
    tracked_run = _track_eval(cfg, run_id, name, metrics, files)
    return EvalResult(
        top1=metrics["top1"],
        top5=metrics["top5"],
        mean_class_accuracy=metrics["mean_class_accuracy"],
        num_samples=metrics["num_samples"],
        num_classes=metrics["num_classes"],
        model=name,
        checkpoint=str(cfg.checkpoint),
        data=str(cfg.data),
        clip_len=clip_len,
        clip_ratio=clip_ratio,
        seconds=seconds,
        out_dir=str(out_dir),
        mlflow_run_id=tracked_run,
        files=files,
    )


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
    ) as tracker:
        tracker.log_metrics(
            {
                "eval_top1": metrics["top1"],
                "eval_top5": metrics["top5"],
                "eval_mean_class_accuracy": metrics["mean_class_accuracy"],
                "eval_num_samples": metrics["num_samples"],
            }
        )
        for key in ("metrics", "per_class", "confusion", "confusion_png", "predictions"):
            tracker.log_artifact(files[key], artifact_path="eval")
        return tracker.run_id


def result_dict(result: EvalResult) -> dict[str, Any]:
    return asdict(result)
