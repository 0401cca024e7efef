"""AlphaPose: the results JSON (``alphapose-results.json``) of ``scripts/demo_inference.py``.

Source of the format: AlphaPose's ``docs/output.md`` ("Output format") and its writer,
``alphapose/utils/pPose_nms.py`` (``write_json``). The file is one list over all frames, one
entry per detected person::

    [{"image_id": "0.jpg", "category_id": 1, "keypoints": [x1, y1, c1, x2, y2, c2, ...],
      "score": 2.9, "box": [x, y, w, h], "idx": 3}, ...]

``image_id`` is the frame's image name (frame number = its last group of digits; a frame with
nobody in it has no entry); ``keypoints`` are pixel triples; ``idx`` is the person's track id
when tracking is on (``--pose_track`` / PoseFlow); without a tracker AlphaPose writes the same
value for everyone, so ids are used only when no frame holds one twice (else people are matched
by position). ``idx`` may be a number or a one-element list.

Scores: the docs give ``c`` in [0, 6] for COCO models and [0, 1] for MPII; Halpe models give
[0, 1]. The rule here: a 17-keypoint (COCO) file's scores are divided by 6, any other
keypoint set's are kept, and the result is clipped to [0, 1] (heatmap maxima overshoot a
little); a negative score is an error. A score of 0 marks an absent joint.

Read here: ``SRC/*.json`` (one results file per video, named by its stem) or
``SRC/<clip>/alphapose-results.json``. Layouts: ``coco17`` (COCO models) or ``halpe26``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from skelact.atomic import atomic_write_text
from skelact.data.formats import Clip, Dropped, FormatError
from skelact.data.formats.clipfiles import check_for_writing
from skelact.data.formats.perframe import (
    ClipProblem,
    assemble,
    frame_number,
    load_json,
    numbers,
    track_id,
)
from skelact.data.formats.tracks import Detection, written_confidence
from skelact.layouts import Layout, joint_count_hint

__all__ = ["RESULTS_NAME", "read_clips", "score_range", "write_clips"]

RESULTS_NAME = "alphapose-results.json"
_COCO_SCORE_MAX = 6.0


def score_range(num_joints: int) -> float:
    """The top of AlphaPose's documented keypoint score range for a keypoint set."""
    return _COCO_SCORE_MAX if num_joints == 17 else 1.0


def read_clips(src: Path, layout: Layout) -> Iterator[Clip | Dropped]:
    """Every results file of ``src`` (sorted by clip name): a :class:`Clip` or :class:`Dropped`."""
    src = Path(src)
    if not src.is_dir():
        raise FormatError(f"{src}: not a folder; alphapose input is a folder of results .json")
    clips: dict[str, Path] = {p.stem: p for p in src.glob("*.json") if not p.name.startswith(".")}
    for folder in (p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        path = folder / RESULTS_NAME
        if path.is_file():
            if folder.name in clips:
                raise FormatError(f"{path}: clip {folder.name!r} is also {clips[folder.name]}")
            clips[folder.name] = path
    if not clips:
        raise FormatError(f"{src}: no AlphaPose results (*.json, or <clip>/{RESULTS_NAME})")
    for name in sorted(clips):
        try:
            keypoint, score = _read_file(clips[name], layout)
        except ClipProblem as problem:
            yield Dropped(name, str(problem))
            continue
        yield Clip(name=name, keypoint=keypoint, score=score)


def _read_file(path: Path, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    data = load_json(path)
    if not isinstance(data, list):
        raise ClipProblem(f"{path.name}: expected AlphaPose's list of per-person results")
    top = score_range(layout.num_joints)
    by_frame: dict[int, list[tuple[Detection, int | None]]] = {}
    for i, entry in enumerate(data):
        where = f"{path.name}: entry {i}"
        if not isinstance(entry, dict) or "image_id" not in entry or "keypoints" not in entry:
            raise ClipProblem(f"{where}: needs 'image_id' and 'keypoints'")
        image = entry["image_id"]
        if isinstance(image, bool) or not isinstance(image, str | int):
            raise ClipProblem(f"{where}: image_id {image!r} is neither a name nor a number")
        number = image if isinstance(image, int) else frame_number(image)
        values = numbers(entry["keypoints"], f"{where}: keypoints")
        if values.ndim != 1 or len(values) != 3 * layout.num_joints:
            raise ClipProblem(
                f"{where}: {values.size} keypoint values; layout {layout.name} needs "
                f"{3 * layout.num_joints} (x, y, score per joint)"
                + (f": {joint_count_hint(values.size // 3)}" if values.size % 3 == 0 else "")
            )
        triples = values.reshape(-1, 3)
        if (triples[:, 2] < 0).any():
            raise ClipProblem(f"{where}: a negative keypoint score ({triples[:, 2].min():g})")
        score = np.minimum(triples[:, 2] / top, 1.0)
        coords = np.where((score == 0)[:, None], 0.0, triples[:, :2])
        track = track_id(entry["idx"], f"{where}: idx") if "idx" in entry else None
        by_frame.setdefault(number, []).append(((coords, score), track))
    return assemble(by_frame, layout.num_joints, channels=2)


def write_clips(
    clips: Iterable[Clip], out_dir: Path, layout: Layout, with_track_ids: bool = True
) -> None:
    """Write each 2-D clip as ``out_dir/<clip>.json`` in AlphaPose's results format.

    Scores are written in AlphaPose's range for the keypoint set (x 6 for COCO-17); ``idx`` is the
    person's index + 1 with ``with_track_ids``, else 0 for everyone (AlphaPose without a tracker).
    """
    out_dir = Path(out_dir)
    top = score_range(layout.num_joints)
    for clip in clips:
        check_for_writing(clip, layout, channels=(2,))
        kp = np.asarray(clip.keypoint, dtype=np.float64)
        present, conf = written_confidence(kp, clip.score)
        entries: list[dict[str, Any]] = []
        for t in range(kp.shape[1]):
            for m in range(kp.shape[0]):
                if not present[m, t].any():
                    continue
                xy = np.where(present[m, t][:, None], kp[m, t], 0.0)
                seen = xy[present[m, t]]
                lo, hi = seen.min(0), seen.max(0)
                triples = np.concatenate([xy, conf[m, t][:, None] * top], axis=1)
                entries.append({
                    "image_id": f"{t}.jpg", "category_id": 1,
                    "keypoints": [round(float(v), 4) for v in triples.reshape(-1)],
                    "score": round(float(conf[m, t][present[m, t]].mean() * 3), 4),
                    "box": [round(float(v), 2) for v in (*lo, *(hi - lo))],
                    "idx": m + 1 if with_track_ids else 0,
                })  # fmt: skip
        atomic_write_text(out_dir / f"{clip.name}.json", json.dumps(entries))
