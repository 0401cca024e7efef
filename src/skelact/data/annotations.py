"""The annotation dicts of a skeleton pickle: which format, and what is wrong with each sample.

Two on-disk formats exist (both written by ``skelact preprocess``):

* MMAction2 0.x: a list of annotation dicts (one file per benchmark and subset);
* PYSKL / MMAction2 1.x: ``{'split': {name: [frame_dir, ...]}, 'annotations': [dicts]}``, one file
  for all benchmarks, so a split key such as ``'xsub_val'`` selects the samples.

Each annotation dict has ``frame_dir``, ``label`` (0-based int), ``total_frames`` and ``keypoint``
(float, M x T x V x C with C = 2 for image-plane x, y or C = 3 for x, y, z); optionally
``keypoint_score`` (M x T x V, each in [0, 1]: the detector's confidence), ``img_shape``
(height, width) and ``layout`` (the name of the joint layout; absent means ``ntu25``, so every
NTU pickle stays valid). All samples of a file share V, C and the layout, and V is the layout's
joint count when the layout is a built-in one. Every check names the sample (index and
frame_dir), so a bad file can be fixed without a debugger. Values must be finite: one NaN or inf
in a sample turns the loss of every batch it joins into NaN.

Raw 3-D coordinates (metres in the camera frame, as PYSKL's NTU files hold them) are refused by
`load_annotations` (`raw_problems`): the models were trained on pre-normalised skeletons, and a
raw one gives confident nonsense, not an error. Pre-normalisation puts body 0's alignment origin
(NTU's spine-middle joint) exactly at 0 in every frame where body 0 is present, so one look at
its first such frame tells the two apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skelact.data.safe_pickle import DatasetError, safe_load
from skelact.errors import bounded
from skelact.layouts import BUILTIN_LAYOUTS, get_layout

__all__ = [
    "DEFAULT_LAYOUT",
    "REQUIRED_KEYS",
    "check_annotations",
    "dims_text",
    "is_raw",
    "load_annotations",
    "nonfinite_counts",
    "pickle_format",
    "raise_problems",
    "raw_problems",
    "sample_layout",
    "sample_problems",
    "score_outside",
    "select_split",
    "structure_problems",
]

REQUIRED_KEYS: tuple[str, ...] = ("frame_dir", "label", "keypoint")
#: The layout of a sample without a ``layout`` key (every NTU pickle).
DEFAULT_LAYOUT = "ntu25"
_F32_MAX = float(np.finfo(np.float32).max)
_DIMS = {2: "2-D keypoints (x, y; C = 2)", 3: "3-D x, y, z (C = 3)"}


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


def sample_layout(ann: dict) -> str:
    """The layout name of a (checked) sample: its ``layout`` key, else ``ntu25``."""
    return str(ann.get("layout", DEFAULT_LAYOUT))


def dims_text(channels: int) -> str:
    """``'2-D keypoints (x, y; C = 2)'`` or ``'3-D x, y, z (C = 3)'``: how messages name C."""
    return _DIMS.get(channels, f"C = {channels}")


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
    if "layout" in ann and not (isinstance(ann["layout"], str) and ann["layout"].strip()):
        problems.append(
            f"{who}: layout {bounded(ann['layout'])} is not a layout name (a non-empty str such "
            "as 'coco17')"
        )
    if "img_shape" in ann:
        problems.extend(_img_shape_problems(who, ann["img_shape"]))
    if "keypoint" in ann:
        found = _keypoint_problems(who, ann)
        problems.extend(found)
        if not found and "keypoint_score" in ann:
            problems.extend(_score_problems(who, ann["keypoint_score"], ann["keypoint"].shape))
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


def _img_shape_problems(who: str, shape: object) -> list[str]:
    ok = (
        isinstance(shape, (tuple, list, np.ndarray))
        and len(shape) == 2
        and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in shape)
        and all(n > 0 for n in shape)
    )
    if ok:
        return []
    return [f"{who}: img_shape {bounded(shape)} is not a (height, width) pair of positive ints"]


def _keypoint_problems(who: str, ann: dict) -> list[str]:
    kp = ann["keypoint"]
    if not isinstance(kp, np.ndarray):
        return [f"{who}: keypoint is a {type(kp).__name__}, expected a NumPy array"]
    if kp.ndim != 4:
        return [
            f"{who}: keypoint has shape {kp.shape} ({kp.ndim}-D); expected 4-D "
            "M x T x V x C (persons, frames, joints, coordinates)"
        ]
    if kp.shape[-1] not in _DIMS:
        return [
            f"{who}: keypoint has shape {kp.shape}; expected C = 2 (image-plane x, y) or "
            "C = 3 (x, y, z)"
        ]
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


def _score_problems(who: str, score: object, kp_shape: tuple[int, ...]) -> list[str]:
    if not isinstance(score, np.ndarray):
        return [f"{who}: keypoint_score is a {type(score).__name__}, expected a NumPy array"]
    if score.shape != kp_shape[:3]:
        return [
            f"{who}: keypoint_score has shape {score.shape}, keypoint {kp_shape}; expected "
            f"M x T x V = {kp_shape[:3]} (one score per joint)"
        ]
    if not np.issubdtype(score.dtype, np.floating):
        return [f"{who}: keypoint_score dtype {score.dtype}, expected floating point"]
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


def score_outside(score: np.ndarray) -> int:
    """How many scores are not finite numbers in [0, 1] (one fast pass when all are)."""
    with np.errstate(invalid="ignore"):
        inside = (score >= 0) & (score <= 1)  # False for NaN
        return 0 if inside.all() else int(inside.size - np.count_nonzero(inside))


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
    if "keypoint_score" in ann:
        bad = score_outside(ann["keypoint_score"])
        if bad:
            problems.append(
                f"{_who(index, ann)}: keypoint_score has {bad} value(s) outside [0, 1] or not "
                "finite; scores are confidences in [0, 1]"
            )
    return problems


def check_annotations(annotations: Sequence[object], num_classes: int | None = None) -> list[str]:
    """All problems of a list of annotation dicts (per sample, plus consistency across samples).

    Across samples: one V, one C and one layout per file (a set is one array), V equal to the
    layout's joint count for a built-in layout, and distinct frame_dirs.
    """
    problems: list[str] = []
    good: list[tuple[int, dict]] = []
    for index, ann in enumerate(annotations):
        found = sample_problems(index, ann, num_classes)
        problems.extend(found)
        if not found:
            good.append((index, ann))
    problems.extend(_consistency_problems(good))
    names = Counter(a.get("frame_dir") for a in annotations if isinstance(a, dict))
    dupes = [n for n, c in names.items() if c > 1 and n is not None]
    if dupes:
        problems.append(f"{len(dupes)} duplicated frame_dir(s), e.g. {dupes[:3]}")
    return problems


def _consistency_problems(good: list[tuple[int, dict]]) -> list[str]:
    """V, C and layout shared by the sound samples, and V matching a built-in layout."""
    if not good:
        return []
    problems: list[str] = []
    joints = Counter(a["keypoint"].shape[2] for _, a in good)
    if len(joints) > 1:
        problems.append(
            f"samples disagree on the number of joints V: {dict(joints)} (count of samples per V)"
        )
    channels = Counter(a["keypoint"].shape[3] for _, a in good)
    if len(channels) > 1:
        usual = channels.most_common(1)[0][0]
        index, odd = next((i, a) for i, a in good if a["keypoint"].shape[3] != usual)
        problems.append(
            f"{_who(index, odd)}: {dims_text(odd['keypoint'].shape[3])}, but the file's other "
            f"samples hold {dims_text(usual)}: all samples of a file share C ({dict(channels)} "
            "samples per C)"
        )
    layouts = Counter(sample_layout(a) for _, a in good)
    if len(layouts) > 1:
        problems.append(
            f"samples disagree on the layout: {dict(layouts)} (count of samples per layout; no "
            f"'layout' key means {DEFAULT_LAYOUT!r}); all samples of a file share one"
        )
    if len(joints) == 1 and len(layouts) == 1:
        problems.extend(_layout_joint_problems(next(iter(layouts)), next(iter(joints)), good))
    return problems


def _layout_joint_problems(name: str, num_joints: int, good: list[tuple[int, dict]]) -> list[str]:
    if name not in BUILTIN_LAYOUTS:
        return []  # a user layout, known by its file: the model build checks V against it
    expected = get_layout(name).num_joints
    if expected == num_joints:
        return []
    given = "'layout'" if "layout" in good[0][1] else f"no 'layout' key, so {DEFAULT_LAYOUT!r}"
    return [
        f"the samples have V = {num_joints} joints, but their layout {name!r} ({given}) has "
        f"{expected}; set each sample's 'layout' to the layout the keypoints follow"
    ]


def raw_problems(path: Path, annotations: Sequence[object]) -> list[str]:
    """One problem naming the first raw (not pre-normalised) 3-D sample, and how many there are.

    See `is_raw`; samples with a malformed keypoint array are skipped (they are problems of their
    own), and a whole raw file is one problem, not one per sample.
    """
    raw = [i for i, ann in enumerate(annotations) if _sound(ann) and is_raw(ann)]
    if not raw:
        return []
    first = annotations[raw[0]]
    assert isinstance(first, dict)
    layout = get_layout(sample_layout(first))
    assert layout.align is not None  # is_raw only flags layouts that align
    return [
        f"{_who(raw[0], first)}: raw 3-D coordinates (body 0's {layout.joints[layout.align.origin]}"
        f" joint is not at 0; {len(raw)} of {len(annotations)} sample(s) are raw), but the models "
        f"need pre-normalised skeletons: convert the file with `skelact import --from pyskl "
        f"{path} --layout {layout.name} --out-dir DIR`, which normalises it"
    ]


def _sound(ann: object) -> bool:
    kp = ann.get("keypoint") if isinstance(ann, dict) else None
    return isinstance(kp, np.ndarray) and kp.ndim == 4 and kp.shape[3] in _DIMS and kp.size > 0


def is_raw(ann: dict) -> bool:
    """Whether a checked 3-D sample of an aligning layout (``ntu25``) is not pre-normalised.

    Pre-normalisation subtracts body 0's alignment origin (NTU's spine-middle joint) from every
    frame, so that joint is exactly 0 wherever body 0 is present; raw coordinates (metres from the
    camera) are not. Tested in the first frame where body 0 is present: a few us per sample.
    """
    kp = ann["keypoint"]
    name = sample_layout(ann)
    if kp.shape[3] != 3 or name not in BUILTIN_LAYOUTS:
        return False
    align = get_layout(name).align
    if align is None:
        return False
    body = kp[0]
    if body[0].any():  # body 0 in the first frame: the usual case, one frame read
        return bool(body[0, align.origin].any())
    present = np.flatnonzero(body.reshape(body.shape[0], -1).any(axis=1))
    return bool(present.size and body[present[0], align.origin].any())


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
    and each offending sample; raw 3-D coordinates (`raw_problems`) are refused too.
    """
    path = Path(path)
    annotations = select_split(safe_load(path), path, split)
    if not annotations:
        raise DatasetError(f"{path}: no samples" + (f" in split {split!r}" if split else ""))
    problems = check_annotations(annotations, num_classes)
    if not problems:
        problems = raw_problems(path, annotations)
    if problems:
        raise_problems(path, problems)
    return annotations
