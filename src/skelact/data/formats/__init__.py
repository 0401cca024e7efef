"""Outside skeleton formats, one module each, all meeting at :class:`Clip`.

Every reader yields ``Clip`` objects and every writer takes them, so a format bridge is
"read A, write B" and the importer (:mod:`skelact.data.importer`) never knows a file layout:

* ``openpose``: a folder per clip of OpenPose per-frame JSON files;
* ``csv``: one CSV file per clip (long form ``frame, person, joint, x, y[, z][, score]`` or wide);
* ``npz``: the CTR-GCN / SGN file (``x_train`` N x T x (M*V*C), one-hot ``y_train``, ``x_test``,
  ``y_test``);
* ``pyskl``: a PYSKL / MMAction2 1.x pickle (``{'split', 'annotations'}``) or a 0.x list;
* ``mmpose``: MMPose / RTMPose inferencer prediction JSON (per video, or per image in folders);
* ``yolo``: Ultralytics YOLO-pose ``save_txt`` results (``<video>_<frame>.txt``, normalised);
* ``alphapose``: AlphaPose results JSON (``idx`` track ids when tracking was on);
* ``kinetics``: the Kinetics-Skeleton release of ST-GCN (clip JSON + label files; a data set);
* ``nwucla``: NW-UCLA's ``all_sqe`` JSON files (a data set; cross-view split).

``docs/datasets-and-estimators.md`` names each format's source and what is converted.

A ``Clip`` holds coordinates as read (raw: pixels, metres); normalisation is the importer's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Clip", "Dropped", "FormatError", "FORMATS"]

from skelact.errors import SkelactError

#: Names accepted by ``skelact import --from`` and ``skelact synth --format``.
FORMATS: tuple[str, ...] = (
    "openpose", "pyskl", "npz", "csv", "mmpose", "yolo", "alphapose", "kinetics", "nwucla",
)  # fmt: skip


class FormatError(SkelactError, ValueError):
    """An input file does not follow its format; the message names the file (and clip)."""


@dataclass
class Clip:
    """One skeleton sequence.

    ``keypoint``: float32 ``(M, T, V, C)``, C in {2, 3}, zeros where a person/joint is absent;
    ``score``: float32 ``(M, T, V)`` in [0, 1] or None; ``label``: a class name (str), a class
    index (int) or None when the format carries none; ``split``: ``'train'``/``'val'`` or None;
    ``img_shape``: ``(height, width)`` in pixels for 2-D image coordinates, else None.
    """

    name: str
    keypoint: np.ndarray
    score: np.ndarray | None = None
    label: str | int | None = None
    split: str | None = None
    img_shape: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return int(self.keypoint.shape[1])


@dataclass(frozen=True)
class Dropped:
    """A clip a reader could not turn into a :class:`Clip`; the importer fails or reports it."""

    name: str
    reason: str
