"""Classification metrics: top-k accuracy, confusion matrix, per-class and mean class accuracy.

Fractions in [0, 1] throughout. Top-k follows MMAction2's ``top_k_accuracy`` (a sample counts
when its label is among the k highest scores; with fewer than k classes every sample counts).
Mean class accuracy averages over the classes that occur in the labels only, since a class with
no samples has no accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """N x k class indices, best first (stable: on ties the lower class index wins)."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def topk_correct(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> list[int]:
    """Number of samples whose label is in the top k, for each k."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(
            f"scores must be N x K with N = len(labels); got {scores.shape}, {labels.shape}"
        )
    top = topk_indices(scores, max(ks))
    hits = top == labels[:, None]
    return [int(hits[:, :k].any(axis=1).sum()) for k in ks]


def topk_accuracy(
    scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)
) -> list[float]:
    """Top-k accuracy for each k (0.0 for an empty set)."""
    n = len(labels)
    return [c / n if n else 0.0 for c in topk_correct(scores, labels, ks)]


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``C[true, pred]`` counts (int64)."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    for what, arr in (("label", labels), ("prediction", preds)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{what} outside 0..{num_classes - 1}: {arr.min()}..{arr.max()}")
    flat = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(support, accuracy) per class; accuracy is NaN where the support is 0."""
    support = confusion.sum(axis=1)
    correct = np.diag(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(support > 0, correct / np.maximum(support, 1), np.nan)
    return support, acc


def mean_class_accuracy(confusion: np.ndarray) -> float:
    """Mean of the per-class accuracies over classes present in the labels."""
    support, acc = per_class_accuracy(confusion)
    present = support > 0
    return float(acc[present].mean()) if present.any() else 0.0
