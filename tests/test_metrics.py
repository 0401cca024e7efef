"""Metric correctness on a hand-made example (values worked out by hand in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skelact.engine import metrics as M

# 5 samples, 4 classes. Rows: scores; the label of each row is in LABELS.
SCORES = np.array(
    [
        [0.9, 0.05, 0.03, 0.02],  # label 0: rank 1 -> top1 hit
        [0.1, 0.2, 0.6, 0.1],  # label 1: rank 2 -> top1 miss (pred 2), top2 hit
        [0.1, 0.2, 0.3, 0.4],  # label 0: rank 4 -> top3 miss, top4 hit
        [0.0, 0.1, 0.7, 0.2],  # label 2: rank 1 -> hit
        [0.3, 0.4, 0.2, 0.1],  # label 2: rank 3 -> top1 miss (pred 1), top3 hit
    ]
)
LABELS = np.array([0, 1, 0, 2, 2])


def test_topk_by_hand():
    assert M.topk_correct(SCORES, LABELS, (1, 2, 3, 4)) == [2, 3, 4, 5]
    assert M.topk_accuracy(SCORES, LABELS, (1, 5)) == [0.4, 1.0]  # k > classes: every sample


def test_confusion_per_class_and_mean_class_accuracy():
    preds = SCORES.argmax(axis=1)  # [0, 2, 3, 2, 1]
    conf = M.confusion_matrix(LABELS, preds, 4)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = 1
    expected[1, 2] = 1
    expected[0, 3] = 1
    expected[2, 2] = 1
    expected[2, 1] = 1
    np.testing.assert_array_equal(conf, expected)
    support, acc = M.per_class_accuracy(conf)
    np.testing.assert_array_equal(support, [2, 1, 2, 0])
    assert acc[:3].tolist() == [0.5, 0.0, 0.5] and math.isnan(acc[3])
    # class 3 has no samples: mean over the three present classes = (0.5 + 0 + 0.5) / 3
    assert M.mean_class_accuracy(conf) == pytest.approx(1 / 3)


def test_ties_resolve_to_lower_class_and_bad_labels_are_rejected():
    scores = np.array([[0.5, 0.5, 0.0]])
    assert M.topk_indices(scores, 2).tolist() == [[0, 1]]
    assert M.topk_correct(scores, np.array([1]), (1,)) == [0]
    with pytest.raises(ValueError, match="label outside"):
        M.confusion_matrix(np.array([3]), np.array([0]), 3)
    with pytest.raises(ValueError, match="N x K"):
        M.topk_correct(scores, np.array([0, 1]))
