"""The NTU RGB+D 25-joint Kinect v2 layout, in one place.

Everything that needs to know how the body is wired (the DGCN graph, the synthetic data generator,
pre-normalisation, plots) reads it from here, so a custom layout only has to be described once.
Indices are 0-based; NTU's own documentation numbers joints from 1.
"""

from __future__ import annotations

from typing import Final

JOINT_NAMES: Final[tuple[str, ...]] = (
    "spine_base",  # 0
    "spine_mid",  # 1
    "neck",  # 2
    "head",  # 3
    "left_shoulder",  # 4
    "left_elbow",  # 5
    "left_wrist",  # 6
    "left_hand",  # 7
    "right_shoulder",  # 8
    "right_elbow",  # 9
    "right_wrist",  # 10
    "right_hand",  # 11
    "left_hip",  # 12
    "left_knee",  # 13
    "left_ankle",  # 14
    "left_foot",  # 15
    "right_hip",  # 16
    "right_knee",  # 17
    "right_ankle",  # 18
    "right_foot",  # 19
    "spine_shoulder",  # 20
    "left_hand_tip",  # 21
    "left_thumb",  # 22
    "right_hand_tip",  # 23
    "right_thumb",  # 24
)

NUM_JOINTS: Final[int] = len(JOINT_NAMES)

#: Graph centre used by GCNs: the spine at shoulder height.
CENTER_JOINT: Final[int] = 20

#: Bones as (child, parent) pairs, i.e. pointing inwards to the centre joint.
INWARD_BONES: Final[tuple[tuple[int, int], ...]] = (
    (0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6),
    (8, 20), (9, 8), (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14),
    (16, 0), (17, 16), (18, 17), (19, 18), (21, 22), (22, 7), (23, 24), (24, 11),
)  # fmt: skip

OUTWARD_BONES: Final[tuple[tuple[int, int], ...]] = tuple((p, c) for c, p in INWARD_BONES)

# Joints that pre-normalisation aligns with the coordinate axes.
SPINE_BASE: Final[int] = 0
SPINE_MID: Final[int] = 1
LEFT_SHOULDER: Final[int] = 4
RIGHT_SHOULDER: Final[int] = 8


def joint_index(name: str) -> int:
    """Index of a joint by name, with the valid names in the error so typos are easy to fix."""
    try:
        return JOINT_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown joint {name!r}; valid names: {', '.join(JOINT_NAMES)}") from None
