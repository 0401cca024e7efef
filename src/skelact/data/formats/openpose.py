"""OpenPose's per-frame JSON: a folder per clip, one ``*_keypoints.json`` file per frame.

Layout read and written::

    SRC/
      clip_a/
        clip_a_000000000000_keypoints.json
        clip_a_000000000001_keypoints.json
        ...
      clip_b/ ...

Each file is ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}`` (other
keys, such as OpenPose's ``version``, ``person_id`` or the face and hand arrays, are ignored). The
clip is the folder's name; its frames are the files in the order of the frame number in their
names (the last group of digits), one frame per file. Every person must have as many keypoints
as the layout has joints, in the layout's order: BODY_25 output is the ``openpose25`` layout,
the 18-keypoint COCO model's (``--model_pose COCO``) is ``openpose_coco18``; a joint-count
mismatch names the built-in layout of that count. A joint with
confidence ``c == 0`` (or at exactly (0, 0)) is absent: its coordinates are 0 and its score 0.
A person whose keypoint list is empty (OpenPose writes that when the body model is off) is no
detection.

People carry no identity across frames, so the reader matches them into tracks by position
(:func:`skelact.data.formats.tracks.match_tracks`) and returns every track, most active first.
Coordinates stay in pixels; the importer normalises them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from skelact.atomic import atomic_write_text
from skelact.data.formats import Clip, Dropped, FormatError
from skelact.data.formats.clipfiles import check_for_writing
from skelact.data.formats.tracks import Detection, match_tracks, written_confidence
from skelact.layouts import Layout, joint_count_hint

__all__ = ["read_clips", "write_clips"]

_DIGITS = re.compile(r"\d+")


def write_clips(clips: Iterable[Clip], out_dir: Path, layout: Layout) -> None:
    """Write each 2-D clip as ``out_dir/<clip>/<clip>_<frame:012d>_keypoints.json`` files.

    A person is written in the frames where at least one of its joints is present; the
    confidence is the clip's score, or 1 for a present joint of a clip without scores.
    """
    out_dir = Path(out_dir)
    for clip in clips:
        check_for_writing(clip, layout, channels=(2,))
        kp = np.asarray(clip.keypoint, dtype=np.float32)
        present, conf = written_confidence(kp, clip.score, np.float32)
        values = np.concatenate([np.where(present[..., None], kp, 0), conf[..., None]], axis=-1)
        # float32's shortest text as JSON numbers: they read back to the same float32
        values = values.astype(str).astype(np.float64)
        folder = out_dir / clip.name
        for t in range(kp.shape[1]):
            people = [
                {"person_id": [-1], "pose_keypoints_2d": values[m, t].reshape(-1).tolist()}
                for m in range(kp.shape[0])
                if present[m, t].any()
            ]
            text = json.dumps({"version": 1.3, "people": people})
            atomic_write_text(folder / f"{clip.name}_{t:012d}_keypoints.json", text)


def read_clips(src: Path, layout: Layout) -> Iterator[Clip | Dropped]:
    """Every clip folder of ``src`` (sorted by name) as a :class:`Clip`, or a :class:`Dropped`."""
    src = Path(src)
    if not src.is_dir():
        raise FormatError(f"{src}: not a folder; openpose input is a folder of clip folders")
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        loose = any(src.glob("*.json"))
        hint = (
            " (it holds .json files itself: give the folder above the clip folders)"
            if loose
            else ""
        )
        raise FormatError(f"{src}: no clip folders{hint}")
    for folder in folders:
        try:
            yield _read_clip(folder, layout)
        except _ClipProblem as problem:
            yield Dropped(folder.name, str(problem))


class _ClipProblem(Exception):
    """One clip cannot be read; becomes a :class:`Dropped`."""


def _read_clip(folder: Path, layout: Layout) -> Clip:
    files = _frame_files(folder)
    frames = [_read_frame(path, layout) for path in files]
    keypoint, score = match_tracks(frames, layout.num_joints, channels=2)
    return Clip(name=folder.name, keypoint=keypoint, score=score)


def _frame_files(folder: Path) -> list[Path]:
    numbered: dict[int, Path] = {}
    for path in folder.glob("*.json"):
        digits = _DIGITS.findall(path.stem)
        if not digits:
            raise _ClipProblem(f"{path.name}: no frame number in the file name")
        number = int(digits[-1])
        if number in numbered:
            raise _ClipProblem(
                f"{path.name} and {numbered[number].name} have the same frame number {number}"
            )
        numbered[number] = path
    if not numbered:
        raise _ClipProblem(f"{folder}: no OpenPose .json files")
    return [numbered[n] for n in sorted(numbered)]


def _read_frame(path: Path, layout: Layout) -> list[Detection]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _ClipProblem(f"{path.name}: not readable JSON ({exc})") from None
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise _ClipProblem(f"{path.name}: no 'people' list")
    detections = []
    for i, person in enumerate(people):
        flat = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if not isinstance(flat, list):
            raise _ClipProblem(f"{path.name}: person {i} has no 'pose_keypoints_2d' list")
        if not flat:
            continue
        try:
            values = np.asarray(flat, dtype=np.float64)
        except (TypeError, ValueError):
            raise _ClipProblem(f"{path.name}: person {i} has non-numeric keypoints") from None
        if values.ndim != 1 or len(values) % 3:
            raise _ClipProblem(
                f"{path.name}: person {i} has {len(values)} numbers, not x, y, c triples"
            )
        if not np.isfinite(values).all():
            raise _ClipProblem(f"{path.name}: person {i} has a non-finite value (NaN or inf)")
        if len(values) // 3 != layout.num_joints:
            raise _ClipProblem(
                f"{path.name}: {len(values) // 3} keypoints per person; layout {layout.name} "
                f"has {layout.num_joints}: {joint_count_hint(len(values) // 3)}"
            )
        triples = values.reshape(-1, 3)
        absent = (triples[:, 2] == 0) | ~np.any(triples[:, :2] != 0, axis=1)
        coords = np.where(absent[:, None], 0.0, triples[:, :2])
        detections.append((coords, np.where(absent, 0.0, triples[:, 2])))
    return detections
