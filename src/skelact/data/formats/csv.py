"""Skeletons as CSV, one file per clip: for MediaPipe exports and your own tracker's output.

``SRC`` is a folder of ``<clip>.csv`` files (or one ``.csv`` file); the clip is the file name
without ``.csv``. The first row is a header; columns are found by name, in any order, and the
file is UTF-8 with ``,`` separators. Two forms, told apart by the ``joint`` column:

Long form, one row per frame, person and joint::

    frame,person,joint,x,y,z,score
    0,0,nose,0.412,0.233,-0.051,0.98
    0,0,left_eye,0.420,0.221,-0.047,0.97
    ...

Wide form, one row per frame and person, three (or two, four) columns per joint::

    frame,person,nose_x,nose_y,nose_score,left_eye_x,left_eye_y,left_eye_score,...

Columns:

* ``frame`` (required): an integer frame number. The clip's frames are the distinct numbers in
  ascending order, one frame each; a frame with no rows is no frame (to keep an empty frame,
  write its rows with zero coordinates).
* ``person`` (optional; absent means one person): an integer track id of your tracker (or any
  label); the same id is the same person in every frame.
* ``joint`` (long form): the joint's name in the layout (``skelact`` lists them in the error for
  an unknown one) or its 0-based index.
* ``x``, ``y`` (required), ``z`` (optional: its presence makes the clip 3-D), ``score``
  (optional, in [0, 1]). In the wide form these are ``<joint>_x``, ``<joint>_y``, ``<joint>_z``,
  ``<joint>_score`` for every joint of the layout (name or index as above); ``z`` and ``score``
  for all joints or for none.

A joint without a row (long form), or with all coordinates 0, or with score 0 is absent: its
coordinates become 0 and its score 0. Coordinates stay as given (pixels, metres, MediaPipe's
normalised units); the importer normalises them. Persons come out most active first
(:func:`skelact.data.formats.tracks.order_by_energy`).
"""

from __future__ import annotations

import csv as _csv
import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from skelact.atomic import atomic_write_text
from skelact.data.formats import Clip, Dropped, FormatError
from skelact.data.formats.clipfiles import check_for_writing
from skelact.data.formats.tracks import order_by_energy
from skelact.layouts import Layout, LayoutError

__all__ = ["read_clips", "write_clips"]

_AXES = ("x", "y", "z")


def write_clips(clips: Iterable[Clip], out_dir: Path, layout: Layout) -> None:
    """Write each clip as ``out_dir/<clip>.csv`` in the long form, joints by layout name.

    Every frame, person and joint gets a row (absent ones with zeros), so the clip's frame and
    person counts survive the round trip.
    """
    out_dir = Path(out_dir)
    for clip in clips:
        check_for_writing(clip, layout, channels=(2, 3))
        kp = np.asarray(clip.keypoint, dtype=np.float32)
        m, t, v, c = kp.shape
        header = ["frame", "person", "joint", *_AXES[:c]]
        columns = [kp.reshape(-1, c)]
        if clip.score is not None:
            header.append("score")
            columns.append(np.asarray(clip.score, dtype=np.float32).reshape(-1, 1))
        # float32's shortest text: reads back to the same float32, without float64 digits
        values = np.concatenate(columns, axis=1).astype(str).tolist()
        # rows in frame, person, joint order: the (M, T, V) index of each row
        order = np.arange(m * t * v).reshape(m, t, v).transpose(1, 0, 2).reshape(-1).tolist()
        buffer = io.StringIO()
        writer = _csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for flat in order:
            person, rest = divmod(flat, t * v)
            frame, joint = divmod(rest, v)
            writer.writerow([frame, person, layout.joints[joint], *values[flat]])
        atomic_write_text(out_dir / f"{clip.name}.csv", buffer.getvalue())


def read_clips(src: Path, layout: Layout) -> Iterator[Clip | Dropped]:
    """Every ``.csv`` file of ``src`` (sorted by name), or ``src`` itself when it is a file."""
    src = Path(src)
    if src.is_file():
        files = [src]
    elif src.is_dir():
        files = sorted(p for p in src.glob("*.csv") if p.is_file())
        if not files:
            raise FormatError(f"{src}: no .csv files")
    else:
        raise FormatError(f"{src}: no such file or folder")
    for path in files:
        name = path.name[: -len(".csv")] if path.name.endswith(".csv") else path.stem
        try:
            yield _read_file(path, name, layout)
        except _ClipProblem as problem:
            yield Dropped(name, f"{path.name}: {problem}")


class _ClipProblem(Exception):
    """One file cannot be read; becomes a :class:`Dropped`."""


def _read_file(path: Path, name: str, layout: Layout) -> Clip:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _ClipProblem(f"not readable as UTF-8 text ({exc})") from None
    rows = list(_csv.reader(io.StringIO(text)))
    if not rows:
        raise _ClipProblem("empty file (no header)")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    if not body:
        raise _ClipProblem("no data rows")
    if len(set(header)) != len(header):
        raise _ClipProblem(f"duplicated column names in the header {header}")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise _ClipProblem(f"row {line} has {len(row)} cells; the header has {len(header)}")
    col = {h: i for i, h in enumerate(header)}
    if "frame" not in col:
        raise _ClipProblem(f"no 'frame' column (header: {','.join(header)})")
    frames = _integers(body, col["frame"], "frame")
    persons = [r[col["person"]].strip() for r in body] if "person" in col else ["0"] * len(body)
    form = _long_form if "joint" in col else _wide_form
    keypoint, score = form(body, col, _tracks(frames, persons), layout)
    order = order_by_energy(keypoint, score)
    return Clip(name=name, keypoint=keypoint[order], score=None if score is None else score[order])


def _integers(body: Sequence[list[str]], index: int, what: str) -> np.ndarray:
    out = np.empty(len(body), dtype=np.int64)
    for i, row in enumerate(body):
        try:
            out[i] = int(row[index])
        except ValueError:
            raise _ClipProblem(f"row {i + 2}: {what} {row[index]!r} is not an integer") from None
    return out


def _numbers(body: Sequence[list[str]], indices: Sequence[int]) -> np.ndarray:
    out = np.empty((len(body), len(indices)), dtype=np.float64)
    for i, row in enumerate(body):
        try:
            out[i] = [float(row[j]) for j in indices]
        except ValueError:
            bad = next(row[j] for j in indices if not _is_float(row[j]))
            raise _ClipProblem(f"row {i + 2}: {bad!r} is not a number") from None
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _joint_index(token: str, layout: Layout) -> int:
    token = token.strip()
    if token.isdigit():
        index = int(token)
        if index >= layout.num_joints:
            raise _ClipProblem(
                f"joint index {index} is outside layout {layout.name} (0..{layout.num_joints - 1})"
            )
        return index
    try:
        return layout.index(token)
    except LayoutError as exc:
        raise _ClipProblem(str(exc)) from None


class _Tracks(NamedTuple):
    """Frame and person slot of each row, and how many of each the clip has."""

    frame: np.ndarray
    person: np.ndarray
    num_frames: int
    num_persons: int

    @property
    def key(self) -> np.ndarray:
        """One number per (person, frame) pair, for finding repeated rows."""
        return self.person * self.num_frames + self.frame

    def shape(self, num_joints: int) -> tuple[int, int, int]:
        """The clip's ``(M, T, V)``."""
        return self.num_persons, self.num_frames, num_joints


def _tracks(frames: np.ndarray, persons: list[str]) -> _Tracks:
    """Frame and person slot of each row; person slots follow the ids (numeric when all are)."""
    frame_values, frame_slot = np.unique(frames, return_inverse=True)
    ids = sorted(set(persons), key=lambda p: (0, int(p), "") if p.isdigit() else (1, 0, p))
    slot_of = {p: i for i, p in enumerate(ids)}
    person_slot = np.array([slot_of[p] for p in persons], dtype=np.int64)
    return _Tracks(frame_slot, person_slot, len(frame_values), len(ids))


def _once(key: np.ndarray, what: str) -> None:
    """Each row's ``key`` (what names) must be its own: the first repeated one is an error."""
    unique, first, counts = np.unique(key, return_index=True, return_counts=True)
    if len(unique) != len(key):
        line = int(first[int(np.flatnonzero(counts > 1)[0])]) + 2
        raise _ClipProblem(f"row {line}: {what} appear again in a later row")


def _coordinate_columns(col: dict[str, int], prefix: str = "") -> tuple[list[int], bool, bool]:
    missing = [prefix + a for a in ("x", "y") if prefix + a not in col]
    if missing:
        raise _ClipProblem(f"no column {missing[0]!r}")
    has_z = prefix + "z" in col
    indices = [col[prefix + a] for a in _AXES[: 3 if has_z else 2]]
    has_score = prefix + "score" in col
    if has_score:
        indices.append(col[prefix + "score"])
    return indices, has_z, has_score


def _assemble(
    values: np.ndarray, has_score: bool, channels: int, slots: tuple[np.ndarray, ...], shape: tuple
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scatter per-row ``values`` (coordinates, then score) into ``(M, T, V, C)`` and scores."""
    person, frame, joint = slots
    keypoint = np.zeros((*shape, channels), dtype=np.float32)
    keypoint[person, frame, joint] = values[:, :channels]
    if not has_score:
        return keypoint, None
    score = np.zeros(shape, dtype=np.float32)
    score[person, frame, joint] = values[:, channels]
    keypoint[score == 0] = 0
    score[~np.any(keypoint != 0, axis=-1)] = 0
    return keypoint, score


def _long_form(
    body: Sequence[list[str]], col: dict[str, int], tracks: _Tracks, layout: Layout
) -> tuple[np.ndarray, np.ndarray | None]:
    indices, has_z, has_score = _coordinate_columns(col)
    extra = set(col) - {"frame", "person", "joint", "x", "y", "z", "score"}
    if extra:
        raise _ClipProblem(f"unknown column(s) {sorted(extra)} in the long form")
    v = layout.num_joints
    joints = np.array([_joint_index(r[col["joint"]], layout) for r in body], dtype=np.int64)
    _once(tracks.key * v + joints, "frame, person and joint")
    values = _numbers(body, indices)
    slots = (tracks.person, tracks.frame, joints)
    return _assemble(values, has_score, 3 if has_z else 2, slots, tracks.shape(v))


def _wide_form(
    body: Sequence[list[str]], col: dict[str, int], tracks: _Tracks, layout: Layout
) -> tuple[np.ndarray, np.ndarray | None]:
    per_joint: dict[int, dict[str, int]] = {}
    for header, index in col.items():
        if header in ("frame", "person"):
            continue
        joint_name, _, axis = header.rpartition("_")
        if not joint_name or axis not in (*_AXES, "score"):
            raise _ClipProblem(
                f"column {header!r} is neither frame, person, joint nor <joint>_x/_y/_z/_score"
            )
        per_joint.setdefault(_joint_index(joint_name, layout), {})[axis] = index
    missing = [layout.joints[j] for j in range(layout.num_joints) if j not in per_joint]
    if missing:
        raise _ClipProblem(
            f"wide form without columns for joint(s) {missing[:5]} of layout {layout.name}"
        )
    layouts = {tuple(sorted(axes)) for axes in per_joint.values()}
    if len(layouts) != 1:
        raise _ClipProblem("joints differ in their columns: z and score for all joints or none")
    first = per_joint[0]
    _, has_z, has_score = _coordinate_columns(first)
    channels = 3 if has_z else 2
    indices = [per_joint[j][a] for j in range(layout.num_joints) for a in _AXES[:channels]]
    if has_score:
        indices += [per_joint[j]["score"] for j in range(layout.num_joints)]
    _once(tracks.key, "frame and person")
    values = _numbers(body, indices)
    v = layout.num_joints
    coords = values[:, : v * channels].reshape(-1, channels)
    scores = values[:, v * channels :].reshape(-1, 1) if has_score else values[:, :0]
    rows = np.repeat(np.arange(len(body)), v)
    joints = np.tile(np.arange(v), len(body))
    per_row = np.concatenate([coords, scores], axis=1)
    slots = (tracks.person[rows], tracks.frame[rows], joints)
    return _assemble(per_row, has_score, channels, slots, tracks.shape(v))
