"""`skelact validate`: check a skeleton pickle and summarise it, collecting every problem.

Unlike loading, validation never stops at the first bad sample: the report lists what is wrong
(unreadable or unsafe file, wrong structure, malformed samples, NaN or inf coordinates, scores
outside [0, 1], a joint count that is not the layout's, raw 3-D coordinates, labels outside the
class count) next to the numbers a user checks before training (samples, classes, frames,
persons, layout, 2-D or 3-D, scores, label gaps).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skelact.data.annotations import (
    check_annotations,
    is_raw,
    nonfinite_counts,
    pickle_format,
    raw_problems,
    sample_layout,
    select_split,
    structure_problems,
)
from skelact.data.safe_pickle import DatasetError, safe_load

__all__ = ["ValidationReport", "validate_file"]


@dataclass
class ValidationReport:
    """What `validate_file` found: summary numbers, or the list of problems."""

    path: str
    split: str | None
    format: str = "unknown"
    problems: list[str] = field(default_factory=list)
    num_samples: int = 0
    num_classes: int = 0
    frames_min: int = 0
    frames_median: float = 0.0
    frames_max: int = 0
    persons: dict[int, int] = field(default_factory=dict)  # M -> number of samples
    joints: int = 0
    channels: int = 0  # C: 2 (x, y) or 3 (x, y, z)
    layout: str = ""  # of the first sound sample; 'ntu25' when it has no 'layout' key
    layout_given: bool = False  # whether the samples name their layout
    samples_with_score: int = 0  # samples with a keypoint_score array
    raw_samples: int = 0  # 3-D samples that are not pre-normalised (see annotations.is_raw)
    nan_count: int = 0
    samples_with_nan: int = 0
    inf_count: int = 0  # as float32, the dtype training reads: |x| > 3.4e38 counts too
    samples_with_inf: int = 0
    label_counts: dict[int, int] = field(default_factory=dict)
    missing_labels: list[int] = field(default_factory=list)  # gaps in 0..max label

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_file(
    path: str | Path, split: str | None = None, *, num_classes: int | None = None
) -> ValidationReport:
    """Check a pickle of either format and summarise it; never raises for bad data.

    Problems (unreadable file, unsafe pickle, wrong structure, bad samples, NaN/inf values,
    labels outside ``num_classes`` when given) are collected in ``report.problems``, each naming
    its sample; an empty list means the file can be trained on.
    """
    path = Path(path)
    report = ValidationReport(path=str(path), split=split)
    try:
        obj = safe_load(path)
        report.format = pickle_format(obj)
        annotations = select_split(obj, path, split)
    except (FileNotFoundError, DatasetError) as exc:
        report.problems.append(str(exc))
        return report
    if not annotations:
        report.problems.append(f"{path}: no samples")
        return report
    report.problems.extend(check_annotations(annotations, num_classes))
    report.problems.extend(raw_problems(path, annotations))
    # The summary covers every sample whose structure is sound, bad values or labels included.
    good = [a for i, a in enumerate(annotations) if not structure_problems(i, a)]
    report.num_samples = len(annotations)
    if not good:
        return report
    frames = np.array([a["keypoint"].shape[1] for a in good])
    report.frames_min, report.frames_max = int(frames.min()), int(frames.max())
    report.frames_median = float(np.median(frames))
    report.persons = dict(sorted(Counter(int(a["keypoint"].shape[0]) for a in good).items()))
    report.joints = int(good[0]["keypoint"].shape[2])
    report.channels = int(good[0]["keypoint"].shape[3])
    report.layout = sample_layout(good[0])
    report.layout_given = "layout" in good[0]
    report.samples_with_score = sum("keypoint_score" in a for a in good)
    report.raw_samples = sum(is_raw(a) for a in good)
    for a in good:
        nans, infs = nonfinite_counts(a["keypoint"])
        report.nan_count += nans
        report.samples_with_nan += nans > 0
        report.inf_count += infs
        report.samples_with_inf += infs > 0
    labels = Counter(int(a["label"]) for a in good)
    report.label_counts = dict(sorted(labels.items()))
    report.num_classes = num_classes if num_classes is not None else max(labels) + 1
    report.missing_labels = [k for k in range(report.num_classes) if k not in labels]
    return report
