"""Ultralytics YOLO-pose: the per-frame ``.txt`` results of ``predict``/``track`` with ``save_txt``.

Source of the format: Ultralytics, ``ultralytics/engine/results.py`` (``Results.save_txt`` and the
``Keypoints`` class) and ``ultralytics/engine/predictor.py`` (the ``labels/<stem>_<frame>.txt``
file names), documented at docs.ultralytics.com, "Predict" mode (``save_txt``, ``save_conf``)
and "Pose" task. For a video ``v.mp4`` Ultralytics writes ``labels/v_1.txt``, ``labels/v_2.txt``,
... (frames counted from 1), one line per detected person::

    class xc yc w h  x1 y1 v1  x2 y2 v2 ...  [conf] [track_id]

with the box and keypoints as fractions of the frame's width and height, ``v`` the keypoint's
confidence, ``conf`` the box confidence (``save_conf=True``) and ``track_id`` the tracker's id
(``model.track``). A frame without people gets no file, and Ultralytics sets x and y to 0 where a
keypoint's confidence is under 0.5, so (0, 0) means missing, never a point in the corner.

Read here: ``SRC`` is the ``labels`` folder; its ``*.txt`` files are grouped into clips by the
name before the last ``_<number>`` (the frame number), or ``SRC/<clip>/`` folders each hold one
clip's frame files. Converted: coordinates become pixels through ``img_shape`` (height, width;
``--img-shape``, which the files do not record), a (0, 0) keypoint is absent (score 0), the
visibility is the score. With one value after the keypoints it is the box confidence when it has
a decimal point, else the track id (Ultralytics writes both with ``%g``). Track ids, when every
line has one, are the persons' identities; otherwise people are matched by position. The class
column is not used (pose models have the one class ``person``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from skelact.atomic import atomic_write_text
from skelact.data.formats import Clip, Dropped, FormatError
from skelact.data.formats.clipfiles import check_for_writing
from skelact.data.formats.perframe import ClipProblem, assemble, frame_number
from skelact.data.formats.tracks import Detection, written_confidence
from skelact.layouts import Layout

__all__ = ["VISIBLE_MIN", "read_clips", "write_clips"]

#: Ultralytics zeroes keypoints whose confidence is below this.
VISIBLE_MIN = 0.5
_FRAME_FILE = re.compile(r"^(?P<clip>.+)_(?P<frame>\d+)\.txt$")


def read_clips(
    src: Path, layout: Layout, *, img_shape: tuple[int, int] | None = None
) -> Iterator[Clip | Dropped]:
    """Every clip of ``src`` (sorted by name); ``img_shape`` (height, width) is required."""
    src = Path(src)
    if img_shape is None:
        raise FormatError(
            f"{src}: YOLO .txt coordinates are fractions of the frame: give the frame size "
            "(--img-shape HEIGHTxWIDTH, or import.img_shape)"
        )
    if not src.is_dir():
        raise FormatError(f"{src}: not a folder; yolo input is Ultralytics' labels folder")
    groups = _groups(src)
    for name, files in groups.items():
        try:
            keypoint, score = _read_clip(files, layout, img_shape)
        except ClipProblem as problem:
            yield Dropped(name, str(problem))
            continue
        yield Clip(name=name, keypoint=keypoint, score=score, img_shape=tuple(img_shape))


def _groups(src: Path) -> dict[str, dict[int, Path]]:
    groups: dict[str, dict[int, Path]] = {}
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        files = sorted(folder.glob("*.txt"))
        if files:
            groups[folder.name] = {}
            for path in files:
                _add(groups[folder.name], frame_number(path.name), path, folder.name)
    for path in sorted(src.glob("*.txt")):
        match = _FRAME_FILE.match(path.name)
        if match is None:
            raise FormatError(
                f"{path}: not a video frame's results file (<video>_<frame>.txt); a single image "
                "is no clip"
            )
        name = match["clip"]
        if name in groups and src / name in folders:
            raise FormatError(f"{path}: clip {name!r} is also a folder of {src}")
        _add(groups.setdefault(name, {}), int(match["frame"]), path, name)
    if not groups:
        raise FormatError(f"{src}: no Ultralytics .txt results files")
    return dict(sorted(groups.items()))


def _add(frames: dict[int, Path], number: int, path: Path, clip: str) -> None:
    if number in frames:
        raise FormatError(f"{path}: clip {clip!r} has frame {number} twice ({frames[number].name})")
    frames[number] = path


def _read_clip(
    files: dict[int, Path], layout: Layout, img_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    by_frame = {n: _read_frame(path, layout, img_shape) for n, path in files.items()}
    return assemble(by_frame, layout.num_joints, channels=2)


def _read_frame(
    path: Path, layout: Layout, img_shape: tuple[int, int]
) -> list[tuple[Detection, int | None]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ClipProblem(f"{path.name}: not readable text ({exc})") from None
    height, width = img_shape
    k = layout.num_joints
    out = []
    for i, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path.name}: line {i}"
        extra = len(tokens) - 5 - 3 * k
        if extra not in (0, 1, 2):
            raise ClipProblem(
                f"{where}: {len(tokens)} values; with layout {layout.name} ({k} keypoints) a line "
                f"is class, 4 box values, {3 * k} keypoint values (x y visibility), then "
                "optionally conf and track id"
            )
        try:
            values = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError:
            raise ClipProblem(f"{where}: a value that is not a number") from None
        if not np.isfinite(values).all():
            raise ClipProblem(f"{where}: a non-finite value (NaN or inf)")
        triples = values[5 : 5 + 3 * k].reshape(k, 3)
        if ((triples < 0) | (triples > 1)).any():
            raise ClipProblem(
                f"{where}: a keypoint value outside [0, 1]; YOLO .txt keypoints are fractions of "
                "the frame and confidences"
            )
        absent = ~np.any(triples[:, :2] != 0, axis=1) | (triples[:, 2] == 0)
        coords = triples[:, :2] * np.array([width, height], dtype=np.float64)
        coords = np.where(absent[:, None], 0.0, coords)
        score = np.where(absent, 0.0, triples[:, 2])
        track = None
        tail = tokens[5 + 3 * k :]
        if len(tail) == 2 or (len(tail) == 1 and not any(c in tail[0] for c in ".eE")):
            value = float(tail[-1])
            if value != int(value):
                raise ClipProblem(f"{where}: track id {tail[-1]!r} is not an integer")
            track = int(value)
        out.append(((coords, score), track))
    return out


def write_clips(
    clips: Iterable[Clip],
    out_dir: Path,
    layout: Layout,
    img_shape: tuple[int, int],
    *,
    save_conf: bool = False,
    with_track_ids: bool = False,
) -> None:
    """Write each 2-D pixel clip as Ultralytics would: ``out_dir/<clip>_<frame>.txt`` (from 1).

    Keypoints under :data:`VISIBLE_MIN` confidence are written as 0 0 (Ultralytics' rule); a frame
    without a person present gets no file; the box is the present joints' bounds.
    """
    out_dir = Path(out_dir)
    height, width = img_shape
    scale = np.array([width, height], dtype=np.float64)
    for clip in clips:
        check_for_writing(clip, layout, channels=(2,))
        kp = np.asarray(clip.keypoint, dtype=np.float64)
        present, conf = written_confidence(kp, clip.score)
        for t in range(kp.shape[1]):
            lines = []
            for m in range(kp.shape[0]):
                if not present[m, t].any():
                    continue
                xy = np.clip(kp[m, t] / scale, 0, 1)
                seen = xy[present[m, t]]
                lo, hi = seen.min(0), seen.max(0)
                xy = np.where((conf[m, t] < VISIBLE_MIN)[:, None], 0.0, xy)
                row = [0, *(lo + hi) / 2, *(hi - lo)]
                row += np.concatenate([xy, conf[m, t][:, None]], axis=1).reshape(-1).tolist()
                if save_conf:
                    row.append(float(conf[m, t][present[m, t]].mean()))
                text = " ".join(f"{v:g}" for v in row)
                if with_track_ids:
                    text += f" {m + 1}"
                lines.append(text)
            if lines:
                atomic_write_text(out_dir / f"{clip.name}_{t + 1}.txt", "\n".join(lines) + "\n")
