"""The result files of an evaluation (``skelact test``) or a fusion (``skelact fuse``).

Torch-free on purpose: a fusion reads saved scores and writes the same files as an evaluation,
without loading a model, so its stage starts in a fraction of a second.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from skelact.atomic import atomic_write_bytes, atomic_write_text
from skelact.engine import metrics as M

__all__ = ["NUMERIC_INFO", "class_names", "softmax", "write_outputs", "write_scores"]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_names(num_classes: int) -> list[str]:
    """NTU action names for class indices (NTU 60 uses the first 60 of the 120)."""
    from skelact.data.ntu import action_names

    names = list(action_names(min(num_classes, 120)))
    return names + [f"class {i}" for i in range(len(names), num_classes)]


# The numbers of a run's description that belong with its metrics (the rest are names and ids).
NUMERIC_INFO = ("clip_len", "clip_ratio", "checkpoint_epoch")


def write_outputs(
    out_dir: Path,
    logits: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    info: dict[str, Any],
    classes: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Write the result files atomically; return the metrics dict and the file paths.

    ``info`` describes the run (model, checkpoint, data, sampling, benchmark, seed): its numbers
    join the metrics, its names go to ``eval_info.json`` with the file paths. ``classes``: the
    class names by index (None: NTU's action names).
    """
    from skelact.report import plot_confusion, run_title

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
        **{k: info[k] for k in NUMERIC_INFO if _is_number(info.get(k))},
    }
    action = list(classes) if classes is not None else class_names(num_classes)
    files = {
        k: str(out_dir / f)
        for k, f in (
            ("metrics", "metrics.json"), ("info", "eval_info.json"),
            ("per_class", "per_class.csv"), ("confusion", "confusion.csv"),
            ("predictions", "predictions.csv"), ("confusion_png", "confusion.png"),
            ("scores", "scores.npz"),
        )
    }  # fmt: skip
    write_scores(files["scores"], logits, labels, names, action)
    atomic_write_text(files["metrics"], json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(
        files["info"],
        json.dumps({**{k: v for k, v in info.items() if k not in NUMERIC_INFO}, "files": files},
                   indent=2) + "\n",
    )  # fmt: skip
    atomic_write_text(files["per_class"], _csv(
        [["class", "action", "support", "correct", "accuracy"]]
        + [[int(c), action[c], int(support[c]), int(conf[c, c]), f"{acc[c]:.6f}"]
           for c in np.flatnonzero(support > 0)]
    ))  # fmt: skip
    atomic_write_text(files["confusion"], _csv(
        [["true\\pred", *range(num_classes)]]
        + [[c, *conf[c].tolist()] for c in range(num_classes)]
    ))  # fmt: skip
    k = min(5, num_classes)
    top = M.topk_indices(logits, k)
    atomic_write_text(files["predictions"], _csv(
        [["sample", "label", "pred", "correct"] + [f"top{i + 1}_class" for i in range(k)]
         + [f"top{i + 1}_score" for i in range(k)]]
        + [[name, int(labels[i]), int(preds[i]), int(preds[i] == labels[i])] + top[i].tolist()
           + [f"{probs[i, j]:.6f}" for j in top[i]] for i, name in enumerate(names)]
    ))  # fmt: skip
    title = run_title(str(info.get("model", "")), info.get("benchmark"), info.get("seed"))
    plot_confusion(conf, Path(files["confusion_png"]), title, action)
    return metrics, files


def write_scores(
    path: str | Path, scores: np.ndarray, labels: np.ndarray, names: list[str], classes: list[str]
) -> None:
    """``scores.npz``: the raw class scores (float32 N x K, the model's logits) with the sample
    names, labels and class names -- what anyone needs to fuse streams or re-analyse a run
    without rerunning it. Plain arrays only: ``np.load(path)`` reads it without pickle."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        scores=np.asarray(scores, dtype=np.float32),
        labels=np.asarray(labels, dtype=np.int64),
        names=np.asarray(names, dtype=str),
        classes=np.asarray(classes, dtype=str),
    )
    atomic_write_bytes(path, buffer.getvalue())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()
