"""MMPose / RTMPose: the prediction JSON that ``MMPoseInferencer(..., pred_out_dir=DIR)`` saves.

Source of the format: MMPose 1.x, ``mmpose/apis/inferencers/base_mmpose_inferencer.py``
(``postprocess``) and ``mmpose/structures/utils.py`` (``split_instances``), documented in MMPose's
user guide "Inference with existing models" (section "Save predictions"). For a video the
inferencer writes one ``<video>.json``::

    [{"frame_id": 0, "instances": [{"keypoints": [[x, y], ...], "keypoint_scores": [s, ...],
                                    "bbox": [[x1, y1, x2, y2]], "bbox_score": b}, ...]},
     {"frame_id": 1, "instances": []}, ...]

and for each image one ``<image>.json`` holding that image's instance list. Read here:

* ``SRC/*.json`` files: one video clip each (named by the file's stem);
* ``SRC/<clip>/`` folders of per-image JSON files: one clip each, the frames in the order of the
  last number in their names (frames extracted from a video, then inferred as images).

Keypoints are pixels of the input frame (kept as pixels; ``[x, y, z]`` from a 3-D lifter is
read as 3-D). A keypoint score of exactly 0 marks an absent joint. Scores are the model's
confidences (heatmap or SimCC maxima), which can overshoot 1 a little: they are clipped to
[0, 1]; a negative score is an error. ``bbox`` and ``bbox_score`` are not used. An instance
``track_id`` (MMPose's pose tracking demos write one) is used as the person's identity when every
instance has one; otherwise people are matched across frames by position.

COCO-17 models are the ``coco17`` layout, Halpe / Body8-Halpe26 models ``halpe26``.
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
from skelact.data.formats.perframe import ClipProblem, assemble, frame_number, load_json, numbers
from skelact.data.formats.tracks import Detection, present_joints
from skelact.layouts import Layout, joint_count_hint

__all__ = ["read_clips", "write_clips"]


def read_clips(src: Path, layout: Layout) -> Iterator[Clip | Dropped]:
    """Every clip of ``src`` (video JSON files and image-JSON folders, sorted by name)."""
    src = Path(src)
    if not src.is_dir():
        raise FormatError(f"{src}: not a folder; mmpose input is a folder of prediction .json")
    entries = sorted(
        p for p in src.iterdir()
        if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".json")
    )  # fmt: skip
    if not entries:
        raise FormatError(f"{src}: no MMPose prediction .json files or clip folders")
    for entry in entries:
        name = entry.stem if entry.is_file() else entry.name
        try:
            frames = _video(entry) if entry.is_file() else _images(entry)
            keypoint, score = assemble(_detections(frames, layout), layout.num_joints,
                                       _channels(frames))  # fmt: skip
        except ClipProblem as problem:
            yield Dropped(name, str(problem))
            continue
        yield Clip(name=name, keypoint=keypoint, score=score)


def _video(path: Path) -> dict[int, tuple[str, Any]]:
    data = load_json(path)
    if not isinstance(data, list):
        raise ClipProblem(f"{path.name}: expected a list of {{frame_id, instances}} frames")
    frames: dict[int, tuple[str, Any]] = {}
    for i, frame in enumerate(data):
        if not isinstance(frame, dict) or "instances" not in frame or "frame_id" not in frame:
            raise ClipProblem(f"{path.name}: frame {i} is not a {{frame_id, instances}} mapping")
        number = frame["frame_id"]
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ClipProblem(f"{path.name}: frame {i}: frame_id {number!r} is not a number >= 0")
        if number in frames:
            raise ClipProblem(f"{path.name}: frame_id {number} appears twice")
        frames[number] = (f"{path.name}: frame_id {number}", frame["instances"])
    return frames


def _images(folder: Path) -> dict[int, tuple[str, Any]]:
    frames: dict[int, tuple[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        number = frame_number(path.name)
        if number in frames:
            raise ClipProblem(f"{path.name}: a second file of frame {number}")
        frames[number] = (path.name, load_json(path))
    if not frames:
        raise ClipProblem(f"{folder.name}: no per-image .json files")
    return frames


def _channels(frames: dict[int, tuple[str, Any]]) -> int:
    """2, or 3 when the first instance's keypoints are [x, y, z]."""
    for _, instances in frames.values():
        for inst in instances if isinstance(instances, list) else ():
            kp = inst.get("keypoints") if isinstance(inst, dict) else None
            if isinstance(kp, list) and kp and isinstance(kp[0], list):
                return 3 if len(kp[0]) == 3 else 2
    return 2


def _detections(
    frames: dict[int, tuple[str, Any]], layout: Layout
) -> dict[int, list[tuple[Detection, int | None]]]:
    channels = _channels(frames)
    out: dict[int, list[tuple[Detection, int | None]]] = {}
    for number, (where, instances) in frames.items():
        if not isinstance(instances, list):
            raise ClipProblem(f"{where}: 'instances' is not a list")
        out[number] = [_instance(inst, f"{where}: instance {i}", layout, channels)
                       for i, inst in enumerate(instances)]  # fmt: skip
    return out


def _instance(inst: Any, where: str, layout: Layout, channels: int) -> tuple[Detection, int | None]:
    if not isinstance(inst, dict) or "keypoints" not in inst or "keypoint_scores" not in inst:
        raise ClipProblem(f"{where}: needs 'keypoints' and 'keypoint_scores'")
    coords = numbers(inst["keypoints"], f"{where}: keypoints")
    scores = numbers(inst["keypoint_scores"], f"{where}: keypoint_scores")
    if coords.ndim != 2 or coords.shape[1] != channels:
        raise ClipProblem(f"{where}: keypoints of shape {coords.shape}, expected K x {channels}")
    if len(coords) != layout.num_joints:
        raise ClipProblem(
            f"{where}: {len(coords)} keypoints; layout {layout.name} has {layout.num_joints}: "
            f"{joint_count_hint(len(coords))}"
        )
    if scores.shape != (len(coords),):
        raise ClipProblem(f"{where}: {scores.size} keypoint_scores for {len(coords)} keypoints")
    if (scores < 0).any():
        raise ClipProblem(f"{where}: a negative keypoint score ({scores.min():g})")
    scores = np.minimum(scores, 1.0)
    coords = np.where((scores == 0)[:, None], 0.0, coords)
    track = inst.get("track_id")
    if track is not None and (isinstance(track, bool) or not isinstance(track, int)):
        raise ClipProblem(f"{where}: track_id {track!r} is not an integer")
    return (coords, scores), track


def write_clips(
    clips: Iterable[Clip], out_dir: Path, layout: Layout, with_track_ids: bool = False
) -> None:
    """Write each clip as ``out_dir/<clip>.json``, the inferencer's video prediction file.

    A person is an instance in the frames where any of its joints is present; an absent joint
    is written at (0, 0) with score 0; the bbox is the present joints' bounds.
    """
    out_dir = Path(out_dir)
    for clip in clips:
        check_for_writing(clip, layout, channels=(2, 3))
        kp = np.asarray(clip.keypoint, dtype=np.float32)
        present = present_joints(kp, clip.score)
        score = present.astype(np.float32)
        if clip.score is not None:
            score = np.where(present, clip.score, 0).astype(np.float32)
        kp = np.where(present[..., None], kp, 0).astype(str).astype(np.float64)
        score = score.astype(str).astype(np.float64)
        frames = []
        for t in range(kp.shape[1]):
            instances = []
            for m in range(kp.shape[0]):
                if not present[m, t].any():
                    continue
                seen = kp[m, t][present[m, t]]
                box = [*seen[:, :2].min(0).tolist(), *seen[:, :2].max(0).tolist()]
                inst: dict[str, Any] = {
                    "keypoints": kp[m, t].tolist(),
                    "keypoint_scores": score[m, t].tolist(),
                    "bbox": [box],
                    "bbox_score": round(float(score[m, t][present[m, t]].mean()), 4),
                }
                if with_track_ids:
                    inst["track_id"] = m
                instances.append(inst)
            frames.append({"frame_id": t, "instances": instances})
        atomic_write_text(out_dir / f"{clip.name}.json", json.dumps(frames))
