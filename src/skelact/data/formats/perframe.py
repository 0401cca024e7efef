"""What the per-frame estimator readers (mmpose, yolo, alphapose) share.

Each of those formats lists detections per frame number, writes nothing for a frame without
people (Ultralytics and AlphaPose) and may number from 0 or 1; so a clip here spans its first to
its last numbered frame, a gap is a frame without people, and the detections become tracks by the
estimator's ids where it gave usable ones (:func:`~skelact.data.formats.tracks.assemble_tracks`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skelact.data.formats.tracks import Detection, assemble_tracks

__all__ = [
    "ClipProblem",
    "assemble",
    "frame_number",
    "load_json",
    "numbers",
    "track_id",
]

_DIGITS = re.compile(r"\d+")


class ClipProblem(Exception):
    """One clip cannot be read; the reader turns it into a ``Dropped``."""


def frame_number(name: str) -> int:
    """The frame number of a file or image name: its last group of digits."""
    digits = _DIGITS.findall(Path(name).stem if "." in name else name)
    if not digits:
        raise ClipProblem(f"{name!r}: no frame number in the name")
    return int(digits[-1])


def load_json(path: Path) -> Any:
    """A JSON file's content; unreadable text or JSON is the clip's problem, named."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClipProblem(f"{path.name}: not readable JSON ({exc})") from None


def numbers(value: Any, where: str) -> np.ndarray:
    """``value`` as a float64 array of finite numbers (booleans and strings refused)."""
    flat = value
    while isinstance(flat, list) and flat and isinstance(flat[0], list):
        flat = [x for row in flat for x in row]
    if not isinstance(flat, list) or any(
        isinstance(x, bool) or not isinstance(x, int | float) for x in flat
    ):
        raise ClipProblem(f"{where}: expected a list of numbers")
    out = np.asarray(value, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ClipProblem(f"{where}: a non-finite value (NaN or inf)")
    return out


def track_id(value: Any, where: str) -> int:
    """An estimator's track id: an integral number, possibly wrapped in one-element lists."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ClipProblem(f"{where}: track id {value!r} is not an integer")
    return int(value)


def assemble(
    by_frame: Mapping[int, Sequence[tuple[Detection, int | None]]], num_joints: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Detections by frame number -> ``(P, T, V, C)`` keypoints and ``(P, T, V)`` scores.

    ``T`` runs from the smallest to the largest frame number; missing numbers are empty frames.
    """
    if not by_frame:
        raise ClipProblem("no frames")
    first, last = min(by_frame), max(by_frame)
    frames = [list(by_frame.get(n, ())) for n in range(first, last + 1)]
    return assemble_tracks(frames, num_joints, channels)
