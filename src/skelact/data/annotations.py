"""The annotation dicts of a skeleton pickle: which format, and what is wrong with each sample.

Two on-disk formats exist (both written by ``skelact preprocess``):

* MMAction2 0.x: a list of annotation dicts (one file per benchmark and subset);
* PYSKL / MMAction2 1.x: ``{'split': {name: [frame_dir, ...]}, 'annotations': [dicts]}``, one file
  for all benchmarks, so a split key such as ``'xsub_val'`` selects the samples.

Each annotation dict has ``frame_dir``, ``label`` (0-based int), ``total_frames`` and ``keypoint``
(float, M x T x V x C). Every check names the sample (index and frame_dir), so a bad file can be
fixed without a debugger. Values must be finite: one NaN or inf in a sample turns the loss of
every batch it joins into NaN.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skelact.data.safe_pickle import DatasetError, safe_load

__all__ = [
    "REQUIRED_KEYS",
    "check_annotations",
    "load_annotations",
    "nonfinite_counts",
    "pickle_format",
    "raise_problems",
    "sample_problems",
    "select_split",
    "structure_problems",
]

REQUIRED_KEYS: tuple[str, ...] = ("frame_dir", "label", "keypoint")
_F32_MAX = float(np.finfo(np.float32).max)


def pickle_format(obj: object) -> str:
    """``'mmaction (list)'`` for an MMAction2 0.x list, else ``'pyskl (split dict)'``."""
    return "mmaction (list)" if isinstance(obj, list) else "pyskl (split dict)"


def select_split(obj: object, path: Path, split: str | None) -> list:
    """Return the annotation list of either format, applying a PYSKL split when asked."""
    if isinstance(obj, list):
        if split is not None:
            raise DatasetError(
                f"{path}: split {split!r} given, but this is an MMAction2 0.x pickle (a plain list "
                "of samples, one file per subset) which has no splits; omit the split"
            )
        return obj
    if isinstance(obj, dict) and "annotations" in obj and "split" in obj:
        return _pyskl_split(obj["split"], obj["annotations"], path, split)
    if isinstance(obj, dict):
        raise DatasetError(
            f"{path}: wrong structure: a dict with keys {sorted(map(str, obj))[:10]}; expected a "
            "list of sample dicts (MMAction2 0.x) or a dict with 'split' and 'annotations' "
            "(PYSKL / MMAction2 1.x)"
        )
    raise DatasetError(
        f"{path}: wrong structure: a {type(obj).__name__}; expected a list of sample dicts "
        "(MMAction2 0.x) or a dict with 'split' and 'annotations' (PYSKL / MMAction2 1.x)"
    )


def _pyskl_split(splits: object, annotations: object, path: Path, split: str | None) -> list:
    if not isinstance(splits, dict) or not isinstance(annotations, list):
        raise DatasetError(
            f"{path}: PYSKL-format pickle needs 'split' to be a dict and 'annotations' a "
            f"list; got {type(splits).__name__} and {type(annotations).__name__}"
        )
    available = ", ".join(repr(k) for k in splits) or "none"
    if split is None:
        raise DatasetError(
            f"{path}: this PYSKL/MMAction2 1.x pickle holds several subsets; choose one with "
            f"a split key (available: {available})"
        )
    if split not in splits:
        raise DatasetError(f"{path}: no split {split!r}; available splits: {available}")
    wanted = splits[split]
    if not isinstance(wanted, (list, tuple)):
        raise DatasetError(f"{path}: split {split!r} is not a list of sample names")
    wanted_set = set(wanted)
    key_of = _identifier_key(annotations)
    selected = [a for a in annotations if isinstance(a, dict) and a.get(key_of) in wanted_set]
    found = {a.get(key_of) for a in selected}
    missing = [name for name in wanted if name not in found]
    if missing:
        shown = ", ".join(map(str, missing[:5]))
        raise DatasetError(
            f"{path}: split {split!r} lists {len(missing)} sample(s) with no annotation "
            f"(e.g. {shown})"
        )
    return selected


def _identifier_key(annotations: list) -> str:
    """PYSKL identifies samples by 'frame_dir' (or 'filename' in some RGB-based files)."""
    first = annotations[0] if annotations and isinstance(annotations[0], dict) else {}
    return "filename" if "filename" in first and "frame_dir" not in first else "frame_dir"


def _who(index: int, ann: dict) -> str:
    return f"sample {index} ({ann['frame_dir']!r})" if "frame_dir" in ann else f"sample {index}"


def structure_problems(index: int, ann: object, num_classes: int | None = None) -> list[str]:
    """Everything wrong with the keys, types and shapes of one annotation dict (empty = fine).

    ``num_classes``: when given, labels must lie in ``[0, num_classes)``.
    """
    if not isinstance(ann, dict):
        return [f"sample {index}: a {type(ann).__name__}, expected a dict"]
    who = _who(index, ann)
    missing = [k for k in REQUIRED_KEYS if k not in ann]
    problems = []
    if missing:
        problems.append(
            f"{who}: missing key(s) {missing} (has {sorted(map(str, ann))}); required: "
            f"{list(REQUIRED_KEYS)}"
        )
    if "frame_dir" in ann and not isinstance(ann["frame_dir"], str):
        problems.append(f"{who}: frame_dir is a {type(ann['frame_dir']).__name__}, expected str")
    if "label" in ann:
        problems.extend(_label_problems(who, ann["label"], num_classes))
    if "keypoint" in ann:
        problems.extend(_keypoint_problems(who, ann))
    return problems


def _label_problems(who: str, label: object, num_classes: int | None) -> list[str]:
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        return [
            f"{who}: label {label!r} is a {type(label).__name__}, expected a non-negative "
            "int (0-based class index)"
        ]
    if label < 0:
        return [f"{who}: label {int(label)} is negative; expected a 0-based class"]
    if num_classes is not None and label >= num_classes:
        return [
            f"{who}: label {int(label)} is outside the {num_classes} classes (0..{num_classes - 1})"
        ]
    return []


def _keypoint_problems(who: str, ann: dict) -> list[str]:
    kp = ann["keypoint"]
    if not isinstance(kp, np.ndarray):
        return [f"{who}: keypoint is a {type(kp).__name__}, expected a NumPy array"]
    if kp.ndim != 4:
        return [
            f"{who}: keypoint has shape {kp.shape} ({kp.ndim}-D); expected 4-D "
            "M x T x V x C (persons, frames, joints, xyz)"
        ]
    if kp.shape[-1] == 2:
        return [
            f"{who}: keypoint has shape {kp.shape}: 2-D keypoints (x, y); the models need "
            "3-D x, y, z skeletons (C = 3), as NTU RGB+D's Kinect data provides"
        ]
    if kp.shape[-1] != 3:
        return [f"{who}: keypoint has shape {kp.shape}; expected C = 3 (x, y, z)"]
    if kp.shape[0] < 1 or kp.shape[1] < 1 or kp.shape[2] < 1:
        return [f"{who}: keypoint has shape {kp.shape}: no persons/frames/joints"]
    if not np.issubdtype(kp.dtype, np.floating):
        return [f"{who}: keypoint dtype {kp.dtype}, expected floating point"]
    if "total_frames" in ann and ann["total_frames"] != kp.shape[1]:
        return [
            f"{who}: total_frames = {ann['total_frames']!r} but keypoint has "
            f"{kp.shape[1]} frames (shape {kp.shape})"
        ]
    return []


def nonfinite_counts(kp: np.ndarray) -> tuple[int, int]:
    """(NaN count, inf count) of a keypoint array as training reads it, in float32.

    A wider float beyond float32's range (|x| > 3.4e38) counts as inf, because that is what it
    becomes in the set. The quick all-finite test runs on every sample (~40 us for 300 frames);
    only a failed one counts the values.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(kp).all() and (kp.dtype.itemsize <= 4 or np.abs(kp).max() <= _F32_MAX):
            return 0, 0
        return int(np.isnan(kp).sum()), int(np.count_nonzero(np.abs(kp) > _F32_MAX))


def sample_problems(index: int, ann: object, num_classes: int | None = None) -> list[str]:
    """Everything wrong with one annotation dict: structure first, then non-finite values."""
    problems = structure_problems(index, ann, num_classes)
    if problems or not isinstance(ann, dict) or "keypoint" not in ann:
        return problems
    nans, infs = nonfinite_counts(ann["keypoint"])
    if nans or infs:
        problems.append(
            f"{_who(index, ann)}: keypoint has {nans} NaN and {infs} inf value(s) (as float32); "
            "every coordinate must be finite"
        )
    return problems


def check_annotations(annotations: Sequence[object], num_classes: int | None = None) -> list[str]:
    """All problems of a list of annotation dicts (per sample, plus consistency across samples)."""
    problems: list[str] = []
    joints: Counter[int] = Counter()
    for index, ann in enumerate(annotations):
        found = sample_problems(index, ann, num_classes)
        problems.extend(found)
        if not found:
            joints[ann["keypoint"].shape[2]] += 1
    if len(joints) > 1:
        problems.append(
            f"samples disagree on the number of joints V: {dict(joints)} (count of samples per V)"
        )
    names = Counter(a.get("frame_dir") for a in annotations if isinstance(a, dict))
    dupes = [n for n, c in names.items() if c > 1 and n is not None]
    if dupes:
        problems.append(f"{len(dupes)} duplicated frame_dir(s), e.g. {dupes[:3]}")
    return problems


def raise_problems(path: Path, problems: list[str]) -> None:
    """One `DatasetError`, one line: the first problem and how many more there are.

    A list of every bad sample would drown the terminal (and the CLI's one error line);
    ``skelact validate`` lists them all.
    """
    more = len(problems) - 1
    tail = f" (and {more} more problem(s): `skelact validate {path}` lists them)" if more else ""
    raise DatasetError(f"{path}: {problems[0]}{tail}")


def load_annotations(
    path: str | Path, split: str | None = None, *, num_classes: int | None = None
) -> list[dict]:
    """Load and validate the annotation dicts of either pickle format.

    ``split`` selects a subset of a PYSKL file (e.g. ``'xsub_val'``) and must be None for an
    MMAction2 0.x list; ``num_classes`` bounds the labels. Raises `DatasetError` naming the file
    and each offending sample.
    """
    path = Path(path)
    annotations = select_split(safe_load(path), path, split)
    if not annotations:
        raise DatasetError(f"{path}: no samples" + (f" in split {split!r}" if split else ""))
    problems = check_annotations(annotations, num_classes)
    if problems:
        raise_problems(path, problems)
    return annotations
