"""Checks the file writers share: a clip name that is a safe file name, a shape the layout fits.

A clip name becomes a folder or file name, so a name with a path separator (or ``..``) would
write outside the output folder; such a clip is refused before anything is written.
"""

from __future__ import annotations

from skelact.data.formats import Clip, FormatError
from skelact.layouts import Layout

__all__ = ["check_for_writing"]


def check_for_writing(clip: Clip, layout: Layout, channels: tuple[int, ...]) -> None:
    """Raise :class:`FormatError` unless ``clip`` can be written as files of ``layout``."""
    name = clip.name
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise FormatError(f"clip {name!r}: not usable as a file name (empty, '.', '..' or a path)")
    kp = clip.keypoint
    if kp.ndim != 4 or kp.shape[2] != layout.num_joints or kp.shape[3] not in channels:
        wanted = " or ".join(map(str, channels))
        raise FormatError(
            f"clip {name!r}: keypoint shape {kp.shape}; layout {layout.name} needs M x T x "
            f"{layout.num_joints} x {wanted}"
        )
    if clip.score is not None and clip.score.shape != kp.shape[:3]:
        raise FormatError(
            f"clip {name!r}: score shape {clip.score.shape} does not match keypoint {kp.shape}"
        )
