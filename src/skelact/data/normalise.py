"""Normalisation on import: outside coordinates (pixels, metres, any origin) -> model-ready ones.

The models learn from poses, not from where the camera stood, so every imported sample is
moved into a body-centred frame before it is written, by one of three rules:

* ``ntu``: 3-D ``ntu25`` samples with raw Kinect coordinates get exactly the NTU
  pre-normalisation of ``skelact preprocess`` (:func:`skelact.data.prenorm.pre_normalise`), so an
  NTU set imported from a PYSKL pickle trains like the one preprocess writes. A 3-D ``ntu25``
  sample that is already pre-normalised (body 0's spine-middle joint exactly 0 in every frame)
  is kept as it is (``prenormalised``): normalising it again would move it by rounding.
* ``body`` (any other layout, 2-D or 3-D): translate by the mean position of body 0's centre
  joint over the frames where it is present, divide by body 0's size: the median over frames of
  the mean length of its bones whose two ends are present. A body 0 whose centre joint is never
  seen is centred on the mean of its present joints instead.
* ``image`` (2-D only, ``--normalise image``): pixel coordinates with the frame size (h, w) map to
  ``(x - w/2, y - h/2) / (max(h, w) / 2)``, keeping positions in the frame (a person walking in
  from the left stays on the left), as PYSKL does for 2-D poses.

Absent joints (all coordinates 0, or score 0) stay exactly 0 in every rule, so the models'
"missing" value survives. A layout other than ``ntu25`` that declares a 3-D ``align`` has no
rotation rule here yet and is refused rather than normalised differently from what it asks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from skelact.data.formats.tracks import present_joints
from skelact.data.prenorm import SPINE_MID, pre_normalise
from skelact.errors import SkelactError
from skelact.layouts import Layout

__all__ = [
    "NormaliseError",
    "Rule",
    "is_prenormalised_ntu",
    "normalise",
    "normalise_body",
    "normalise_image",
]

Rule = Literal["ntu", "prenormalised", "body", "image"]


class NormaliseError(SkelactError, ValueError):
    """A sample cannot be normalised by the chosen rule; the caller names the clip."""


def is_prenormalised_ntu(keypoint: np.ndarray) -> bool:
    """Whether a 3-D ntu25 sample is already NTU pre-normalised (body 0's spine middle is 0)."""
    return bool(np.all(keypoint[0, :, SPINE_MID] == 0))


def normalise(
    keypoint: np.ndarray,
    layout: Layout,
    *,
    score: np.ndarray | None = None,
    mode: Literal["body", "image"] = "body",
    img_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, Rule]:
    """The normalised float32 copy of ``(M, T, V, C)`` keypoints and the rule that was applied."""
    keypoint = np.asarray(keypoint, dtype=np.float32)
    channels = keypoint.shape[-1]
    if mode == "image":
        if channels != 2:
            raise NormaliseError(f"--normalise image is for 2-D keypoints; these have C={channels}")
        if img_shape is None:
            raise NormaliseError(
                "--normalise image needs the frame size (height, width): the source carries none; "
                "give it (e.g. --img-shape 1080x1920) or use --normalise body"
            )
        return normalise_image(keypoint, img_shape, score), "image"
    if channels == 3 and layout.name == "ntu25":
        if is_prenormalised_ntu(keypoint):
            return keypoint.copy(), "prenormalised"
        with np.errstate(over="ignore", invalid="ignore"):
            return pre_normalise(keypoint), "ntu"
    if channels == 3 and layout.align is not None:
        raise NormaliseError(
            f"layout {layout.name} declares a 3-D 'align' rule, which only ntu25's NTU "
            "pre-normalisation implements; drop 'align' from the layout file to centre and scale "
            "by body size instead"
        )
    return normalise_body(keypoint, layout, score), "body"


def normalise_body(
    keypoint: np.ndarray, layout: Layout, score: np.ndarray | None = None
) -> np.ndarray:
    """Centre on body 0's mean centre joint and divide by its median mean bone length."""
    kp = np.asarray(keypoint, dtype=np.float64)
    present = present_joints(kp, score)
    body, seen = kp[0], present[0]
    if not seen.any():
        raise NormaliseError("body 0 has no joint present in any frame")
    centre_seen = seen[:, layout.center]
    if centre_seen.any():
        centre = body[centre_seen, layout.center].mean(axis=0)
    else:
        centre = body[seen].mean(axis=0)
    child, parent = np.array(layout.bones, dtype=np.int64).reshape(-1, 2).T
    both = seen[:, child] & seen[:, parent]  # (T, B)
    lengths = np.linalg.norm(body[:, child] - body[:, parent], axis=-1)
    counts = both.sum(axis=1)
    measured = counts > 0
    if not measured.any():
        raise NormaliseError(
            f"body 0 never shows both ends of any bone of layout {layout.name}: no body size"
        )
    per_frame = (lengths * both).sum(axis=1)[measured] / counts[measured]
    size = float(np.median(per_frame))
    if not size > 0 or not np.isfinite(size):
        raise NormaliseError(f"body 0's bone length is {size:g}: the body has no size")
    out = (kp - centre) / size
    return np.where(present[..., None], out, 0).astype(np.float32)


def normalise_image(
    keypoint: np.ndarray, img_shape: tuple[int, int], score: np.ndarray | None = None
) -> np.ndarray:
    """2-D pixels -> ``(x - w/2, y - h/2) / (max(h, w) / 2)``; absent joints stay 0."""
    height, width = (int(v) for v in img_shape)
    if height <= 0 or width <= 0:
        raise NormaliseError(f"img_shape {tuple(img_shape)} is not a (height, width) in pixels")
    kp = np.asarray(keypoint, dtype=np.float64)
    present = present_joints(kp, score)
    out = (kp - np.array([width / 2, height / 2])) / (max(height, width) / 2)
    return np.where(present[..., None], out, 0).astype(np.float32)
