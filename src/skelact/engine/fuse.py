"""Score fusion: the weighted sum of several evaluations' class scores, ``skelact fuse``.

The field reports skeleton models as an ensemble of streams (joint, bone and their motions):
each stream's model is evaluated on its own, and the class scores are summed with weights --
CTR-GCN's ``ensemble.py`` uses 0.6 / 0.6 / 0.4 / 0.4 on the raw scores, PYSKL and MMAction2 2 :
2 : 1 : 1, MMAction2 optionally after a softmax per stream. Here the inputs are the
``scores.npz`` files that ``skelact test`` writes (raw scores by sample name), so a fusion needs
no model and no data, and anyone can recompute it from the files.

Nothing is fused silently wrong: the files must hold the same samples (matched by name, in any
order), the same labels and the same class count, every score and weight must be finite, and
the weights non-negative with a positive sum. The result is written like an evaluation
(metrics.json, per_class.csv, confusion.csv/png, predictions.csv, scores.npz of the fused
scores, eval_info.json naming the inputs and weights) and logged to MLflow as its own run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelact.atomic import atomic_write_text, remove_stale_temps
from skelact.engine.results import softmax as probabilities
from skelact.engine.results import write_outputs
from skelact.errors import SkelactError
from skelact.locking import output_lock

__all__ = ["FuseError", "FuseConfig", "FuseResult", "Scores", "fuse", "fused_scores",
           "read_scores", "write_summary"]  # fmt: skip


class FuseError(SkelactError):
    """Score files that cannot be fused (missing, malformed, or not about the same samples)."""


@dataclass
class Scores:
    """One ``scores.npz``: raw class scores (N x K float32) by sample."""

    path: str
    scores: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    classes: np.ndarray


@dataclass
class FuseConfig:
    """Settings of ``skelact fuse``: the score files and one weight per file."""

    scores: list[str]
    weights: list[float]
    out_dir: str
    softmax: bool = False  # fuse class probabilities instead of raw scores (MMAction2's option)
    names: list[str] | None = None  # what each input is (e.g. its stream), for the info file
    info: dict[str, Any] = field(default_factory=dict)  # model, benchmark, seed: for the files
    track: bool = True
    tracking_uri: str | None = None
    experiment: str = "skelact"
    run_name: str | None = None
    quiet: bool = False


@dataclass
class FuseResult:
    top1: float
    top5: float
    mean_class_accuracy: float
    num_samples: int
    out_dir: str
    mlflow_run_id: str | None = None
    files: dict[str, str] = field(default_factory=dict)


def read_scores(path: str | Path) -> Scores:
    """A ``scores.npz`` of ``skelact test`` (or ``fuse``), checked for shape and finiteness."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("scores", "labels", "names") if k not in npz.files]
            if missing:
                raise FuseError(f"{path}: not a scores file (missing {', '.join(missing)})")
            scores = np.asarray(npz["scores"], dtype=np.float32)
            labels = np.asarray(npz["labels"])
            names = np.asarray(npz["names"])
            classes = np.asarray(npz["classes"]) if "classes" in npz.files else np.array([])
    except FileNotFoundError:
        raise FuseError(f"{path}: no such scores file (run `skelact test` first)") from None
    except (OSError, ValueError) as exc:  # not a zip, or an object array (pickle refused)
        raise FuseError(f"{path}: not a readable scores .npz ({exc})") from None
    if scores.ndim != 2 or labels.shape != (scores.shape[0],) or names.shape != labels.shape:
        raise FuseError(
            f"{path}: scores {scores.shape}, labels {labels.shape} and names {names.shape} do "
            "not describe the same N samples"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise FuseError(f"{path}: labels are {labels.dtype}, not integers")
    if not np.isfinite(scores).all():
        raise FuseError(f"{path}: {int((~np.isfinite(scores)).sum())} score(s) are not finite")
    if len(set(names.tolist())) != len(names):
        raise FuseError(f"{path}: a sample name occurs twice")
    return Scores(str(path), scores, labels.astype(np.int64), names, classes)


def fused_scores(
    inputs: Sequence[Scores], weights: Sequence[float], softmax: bool = False
) -> tuple[np.ndarray, Scores]:
    """``sum_i weights[i] * s_i`` (float64, in the first input's sample order) and that input.

    The other inputs are aligned to the first by sample name; their labels and class counts
    must agree with it.
    """
    if len(inputs) < 1:
        raise FuseError("nothing to fuse: give at least one scores file")
    if len(weights) != len(inputs):
        raise FuseError(f"{len(weights)} weight(s) for {len(inputs)} scores file(s)")
    for w in weights:
        if not math.isfinite(w) or w < 0:
            raise FuseError(f"weight {w} is not a finite number >= 0")
    if sum(weights) <= 0:
        raise FuseError("the weights sum to 0: nothing would be fused")
    first = inputs[0]
    order = {name: i for i, name in enumerate(first.names.tolist())}
    total = np.zeros(first.scores.shape, dtype=np.float64)
    for item, w in zip(inputs, weights, strict=True):
        if item.scores.shape != first.scores.shape:
            raise FuseError(
                f"{item.path}: {item.scores.shape[0]} samples x {item.scores.shape[1]} classes, "
                f"but {first.path} has {first.scores.shape[0]} x {first.scores.shape[1]}"
            )
        try:
            at = np.array([order[n] for n in item.names.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise FuseError(f"{item.path}: sample {exc.args[0]} is not in {first.path}") from None
        if not np.array_equal(first.labels[at], item.labels):
            bad = int(np.flatnonzero(first.labels[at] != item.labels)[0])
            raise FuseError(
                f"{item.path}: sample {item.names[bad]} has label {int(item.labels[bad])}, but "
                f"{int(first.labels[at][bad])} in {first.path}"
            )
        part = item.scores.astype(np.float64)
        if softmax:
            part = probabilities(part)
        total[at] += w * part
    return total, first


def fuse(cfg: FuseConfig) -> FuseResult:
    """Fuse ``cfg.scores`` with ``cfg.weights`` and write the result files into ``cfg.out_dir``."""
    t0 = time.perf_counter()
    inputs = [read_scores(p) for p in cfg.scores]
    total, first = fused_scores(inputs, cfg.weights, cfg.softmax)
    out_dir = Path(cfg.out_dir)
    names = cfg.names or [Path(p).parent.name for p in cfg.scores]
    with output_lock(out_dir, "fuse"):
        remove_stale_temps(out_dir)
        classes = [str(c) for c in first.classes.tolist()] or None
        info = {**cfg.info, "fused": names, "weights": list(map(float, cfg.weights)),
                "softmax": cfg.softmax, "scores": list(cfg.scores)}  # fmt: skip
        metrics, files = write_outputs(out_dir, total, first.labels, first.names.tolist(), info,
                                       classes)  # fmt: skip
        run_id = _track(cfg, metrics, files, info, time.perf_counter() - t0)
    return FuseResult(
        top1=metrics["top1"], top5=metrics["top5"],
        mean_class_accuracy=metrics["mean_class_accuracy"], num_samples=metrics["num_samples"],
        out_dir=str(out_dir), mlflow_run_id=run_id, files=files,
    )  # fmt: skip


def _track(
    cfg: FuseConfig, metrics: dict, files: dict[str, str], info: dict, seconds: float
) -> str | None:
    """The fusion as an MLflow run of its own: its inputs and weights as params, its metrics."""
    if not cfg.track:
        return None
    from skelact.tracking import open_eval_run

    tags = {k: str(info[k]) for k in ("model", "benchmark", "seed") if info.get(k) is not None}
    with open_eval_run(
        enabled=True, experiment=cfg.experiment, run_id=None, child=False,
        run_name=cfg.run_name or "fuse-" + "+".join(info["fused"]), tracking_uri=cfg.tracking_uri,
        tags={**tags, "kind": "fusion"}, quiet=cfg.quiet,
    ) as tracker:  # fmt: skip
        tracker.log_params(
            {"fused": ",".join(info["fused"]), "softmax": cfg.softmax,
             **{f"weight.{n}": w for n, w in zip(info["fused"], info["weights"], strict=True)}}
        )  # fmt: skip
        tracker.log_metrics(
            {"fused_top1": metrics["top1"], "fused_top5": metrics["top5"],
             "fused_mean_class_accuracy": metrics["mean_class_accuracy"],
             "fused_num_samples": metrics["num_samples"], "fuse_seconds": seconds}
        )  # fmt: skip
        for path in files.values():
            tracker.log_artifact(path, artifact_path="fused")
        return tracker.run_id


def write_summary(
    path: str | Path, infos: Sequence[dict[str, Any]], results: Sequence[FuseResult]
) -> None:
    """The pipeline's fusions as one DVC metrics file: ``{"<benchmark>/<model>/seed<N>":
    {top1, top5, mean_class_accuracy}}`` (numbers only; ``{}`` when nothing was fused, so that
    the stage's output always exists)."""
    table = {
        f"{info['benchmark']}/{info['model']}/seed{info['seed']}": {
            "top1": r.top1, "top5": r.top5, "mean_class_accuracy": r.mean_class_accuracy,
        }
        for info, r in zip(infos, results, strict=True)
    }  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(table, indent=2, sort_keys=True) + "\n")
