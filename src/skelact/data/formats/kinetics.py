"""Kinetics-Skeleton, the ST-GCN release: OpenPose COCO-18 poses of Kinetics-400 clips.

Source of the format: ST-GCN (Yan et al., AAAI 2018), ``yysijie/st-gcn`` (also in
``open-mmlab/mmskeleton``): ``feeder/feeder_kinetics.py``, ``tools/data_gen/kinetics_gendata.py``
and its README's data section. The release folder::

    kinetics-skeleton/
      kinetics_train/<video_id>.json      kinetics_train_label.json
      kinetics_val/<video_id>.json        kinetics_val_label.json

A clip file is ``{"data": [{"frame_index": 1, "skeleton": [{"pose": [x0, y0, x1, y1, ...],
"score": [s0, ...]}, ...]}, ...], "label": "abseiling", "label_index": 0}``, with the 18
OpenPose COCO joints (layout ``openpose_coco18``) as fractions of the frame (the videos were
resized to 340 x 256 at 30 fps). A label file maps each video id to ``{"has_skeleton": bool,
"label": name, "label_index": int}``.

What is converted, as ST-GCN's feeder does: clips flagged ``has_skeleton: false`` are left out
(they have no poses); of each frame's skeleton list the first 5 are read (``num_person_in``) and
the 2 with the highest summed joint score are kept, sorted per frame (``num_person_out``); a joint
with score 0 is absent. Coordinates become pixels of the 340 x 256 frame (``img_shape`` is set,
so ``--normalise image`` works); scores are OpenPose's confidences in [0, 1]. The clip spans the
first to the last ``frame_index``; a frame missing from ``data`` is empty. The split is the
folder's (train / val) and the label the label file's ``label_index`` (checked against the
clip's own); class names come from the label files (:func:`class_names`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from skelact.atomic import atomic_write_text
from skelact.data.formats import Clip, Dropped, FormatError
from skelact.data.formats.clipfiles import check_for_writing
from skelact.data.formats.perframe import ClipProblem, load_json, numbers
from skelact.data.formats.tracks import written_confidence
from skelact.layouts import Layout

__all__ = [
    "FRAME_SIZE",
    "NUM_PERSON_IN",
    "NUM_PERSON_OUT",
    "PARTS",
    "class_names",
    "read_clips",
    "write_release",
]

#: (width, height) in pixels of the frames the coordinates are fractions of.
FRAME_SIZE = (340, 256)
NUM_PERSON_IN = 5
NUM_PERSON_OUT = 2
#: split -> (clip folder, label file)
PARTS = {
    "train": ("kinetics_train", "kinetics_train_label.json"),
    "val": ("kinetics_val", "kinetics_val_label.json"),
}


def _labels(src: Path, split: str) -> dict[str, dict[str, Any]]:
    path = src / PARTS[split][1]
    if not path.is_file():
        raise FormatError(f"{path}: missing; a Kinetics-Skeleton folder holds {PARTS[split][1]}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a mapping of video id -> label entry")
    for video, entry in data.items():
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("has_skeleton"), bool)
            and isinstance(entry.get("label"), str)
            and isinstance(entry.get("label_index"), int)
            and not isinstance(entry.get("label_index"), bool)
            and entry["label_index"] >= 0
        )
        if not ok:
            raise FormatError(
                f"{path}: entry {video!r} is not {{has_skeleton: bool, label: str, "
                "label_index: int >= 0}"
            )
    return data


def _check_root(src: Path) -> None:
    if not src.is_dir():
        raise FormatError(f"{src}: not a folder; kinetics input is the kinetics-skeleton folder")
    for folder, _ in PARTS.values():
        if not (src / folder).is_dir():
            raise FormatError(f"{src / folder}: missing; the release has kinetics_train/ and "
                              "kinetics_val/ beside their label files")  # fmt: skip


def class_names(src: Path) -> list[str]:
    """Class names by ``label_index`` from both label files; an index without a name (a subset
    of the release) is named ``unlabelled_<index>``, and one index with two names is an error."""
    src = Path(src)
    _check_root(src)
    names: dict[int, str] = {}
    for split in PARTS:
        for video, entry in _labels(src, split).items():
            index, name = entry["label_index"], entry["label"]
            if names.setdefault(index, name) != name:
                raise FormatError(
                    f"{src / PARTS[split][1]}: {video!r} names class {index} {name!r}, elsewhere "
                    f"{names[index]!r}"
                )
    if not names:
        raise FormatError(f"{src}: the label files list no clips")
    return [names.get(i, f"unlabelled_{i}") for i in range(max(names) + 1)]


def read_clips(src: Path, layout: Layout) -> Iterator[Clip | Dropped]:
    """The train then the val clips (each sorted by video id) with a skeleton."""
    src = Path(src)
    _check_root(src)
    if layout.num_joints != 18:
        raise FormatError(f"{src}: Kinetics-Skeleton has 18 joints (layout openpose_coco18); "
                          f"layout {layout.name} has {layout.num_joints}")  # fmt: skip
    for split, (folder, _) in PARTS.items():
        labels = _labels(src, split)
        for path in sorted((src / folder).glob("*.json")):
            video = path.stem
            entry = labels.get(video)
            if entry is None:
                yield Dropped(video, f"{folder}/{path.name}: not in {PARTS[split][1]}")
                continue
            if not entry["has_skeleton"]:
                continue  # the release's own flag: no poses were found in this video
            try:
                keypoint, score = _read_clip(path, entry["label_index"])
            except ClipProblem as problem:
                yield Dropped(video, f"{folder}/{problem}")
                continue
            yield Clip(video, keypoint, score, entry["label_index"], split,
                       (FRAME_SIZE[1], FRAME_SIZE[0]))  # fmt: skip


def _read_clip(path: Path, label_index: int) -> tuple[np.ndarray, np.ndarray]:
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ClipProblem(f"{path.name}: no 'data' list of frames")
    own = data.get("label_index")
    if own is not None and own != label_index:
        raise ClipProblem(
            f"{path.name}: label_index {own!r}, but the label file says {label_index}"
        )
    frames: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for i, frame in enumerate(data["data"]):
        where = f"{path.name}: data[{i}]"
        if not isinstance(frame, dict) or not isinstance(frame.get("skeleton"), list):
            raise ClipProblem(f"{where}: needs 'frame_index' and a 'skeleton' list")
        number = frame.get("frame_index")
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ClipProblem(f"{where}: frame_index {number!r} is not a number >= 0")
        if number in frames:
            raise ClipProblem(f"{where}: frame_index {number} appears twice")
        people = []
        for m, person in enumerate(frame["skeleton"][:NUM_PERSON_IN]):
            if not isinstance(person, dict) or "pose" not in person or "score" not in person:
                raise ClipProblem(f"{where}: skeleton {m} needs 'pose' and 'score'")
            pose = numbers(person["pose"], f"{where}: skeleton {m}: pose")
            score = numbers(person["score"], f"{where}: skeleton {m}: score")
            if pose.shape != (36,) or score.shape != (18,):
                raise ClipProblem(
                    f"{where}: skeleton {m}: pose has {pose.size} values and score {score.size}; "
                    "expected 36 (x, y of 18 joints) and 18"
                )
            if ((score < 0) | (score > 1)).any():
                raise ClipProblem(f"{where}: skeleton {m}: a score outside [0, 1]")
            xy = pose.reshape(18, 2) * np.array(FRAME_SIZE, dtype=np.float64)
            people.append((np.where((score == 0)[:, None], 0.0, xy), score))
        frames[number] = people
    if not frames:
        raise ClipProblem(f"{path.name}: 'data' holds no frames")
    first, last = min(frames), max(frames)
    keypoint = np.zeros((NUM_PERSON_OUT, last - first + 1, 18, 2), np.float32)
    scores = np.zeros((NUM_PERSON_OUT, last - first + 1, 18), np.float32)
    for number, people in frames.items():
        ranked = sorted(range(len(people)), key=lambda m: -people[m][1].sum())  # stable
        for slot, m in enumerate(ranked[:NUM_PERSON_OUT]):
            keypoint[slot, number - first], scores[slot, number - first] = people[m]
    return keypoint, scores


def write_release(
    clips: Iterable[Clip],
    root: Path,
    layout: Layout,
    class_of: Mapping[int, str],
    no_skeleton: Iterable[tuple[str, int, str]] = (),
) -> None:
    """Write 2-D pixel clips (int labels, splits train/val, ``img_shape`` set) as the release.

    Coordinates become fractions of the clip's frame, rounded to 3 decimals as in the release;
    frames are numbered from 1; ``no_skeleton`` adds label entries ``(video, split, index)`` with
    ``has_skeleton: false`` and no clip file. The label files are written last.
    """
    root = Path(root)
    labels: dict[str, dict[str, Any]] = {split: {} for split in PARTS}
    for clip in clips:
        check_for_writing(clip, layout, channels=(2,))
        if clip.split not in PARTS or not isinstance(clip.label, int) or clip.img_shape is None:
            raise FormatError(f"clip {clip.name!r}: kinetics needs an int label, a train/val "
                              "split and img_shape")  # fmt: skip
        size = np.array([clip.img_shape[1], clip.img_shape[0]], dtype=np.float64)
        kp = np.asarray(clip.keypoint, dtype=np.float64)
        present, conf = written_confidence(kp, clip.score)
        frames = []
        for t in range(kp.shape[1]):
            skeleton = [
                {"pose": [round(float(v), 3) for v in (kp[m, t] / size).reshape(-1)],
                 "score": [round(float(v), 3) for v in conf[m, t]]}
                for m in range(kp.shape[0]) if present[m, t].any()
            ]  # fmt: skip
            frames.append({"frame_index": t + 1, "skeleton": skeleton})
        name = class_of[clip.label]
        body = {"data": frames, "label": name, "label_index": clip.label}
        atomic_write_text(root / PARTS[clip.split][0] / f"{clip.name}.json", json.dumps(body))
        labels[clip.split][clip.name] = {"has_skeleton": True, "label": name,
                                         "label_index": clip.label}  # fmt: skip
    for video, split, index in no_skeleton:
        labels[split][video] = {"has_skeleton": False, "label": class_of[index],
                                "label_index": index}  # fmt: skip
    for split, (folder, label_file) in PARTS.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / label_file, json.dumps(labels[split], indent=1))
