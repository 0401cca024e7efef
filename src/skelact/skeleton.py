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


def joint_index(name: str) -> int:
    """Index of a joint by name, with the valid names in the error so typos are easy to fix."""
    try:
        return JOINT_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown joint {name!r}; valid names: {', '.join(JOINT_NAMES)}") from None


#: Graph centre used by GCNs: the spine at shoulder height.
CENTER_JOINT: Final[int] = joint_index("spine_shoulder")

#: Bones as (child, parent) pairs, i.e. pointing inwards to the centre joint (ST-GCN's NTU list,
#: 0-based; the hand tip hangs off the thumb as in that list).
INWARD_BONES: Final[tuple[tuple[int, int], ...]] = (
    (0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6),
    (8, 20), (9, 8), (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14),
    (16, 0), (17, 16), (18, 17), (19, 18), (21, 22), (22, 7), (23, 24), (24, 11),
)  # fmt: skip

OUTWARD_BONES: Final[tuple[tuple[int, int], ...]] = tuple((p, c) for c, p in INWARD_BONES)

# Joints that pre-normalisation aligns with the coordinate axes.
SPINE_BASE: Final[int] = joint_index("spine_base")
SPINE_MID: Final[int] = joint_index("spine_mid")
LEFT_SHOULDER: Final[int] = joint_index("left_shoulder")
RIGHT_SHOULDER: Final[int] = joint_index("right_shoulder")


def _other_side(name: str) -> str:
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(side):
            return other + name[len(side) :]
    return name


# --- Canonical body (used by the synthetic data generator) ---------------------------------------
#
# A rest pose in metres, in the Kinect camera convention for a person facing the camera: x points to
# the person's right (so left joints have negative x, as in real NTU files), y points up and the
# person faces -z (towards the sensor).  Spine base is the origin.  The proportions follow a real
# NTU frame of a ~1.6 m adult; the generator scales it per subject.

REST_POSE: Final[tuple[tuple[float, float, float], ...]] = (
    (0.0, 0.0, 0.0),  # 0 spine_base
    (0.0, 0.28, 0.0),  # 1 spine_mid
    (0.0, 0.54, -0.01),  # 2 neck
    (0.0, 0.66, -0.02),  # 3 head
    (-0.17, 0.47, 0.0),  # 4 left_shoulder
    (-0.21, 0.23, 0.0),  # 5 left_elbow
    (-0.23, 0.0, 0.0),  # 6 left_wrist
    (-0.235, -0.07, 0.0),  # 7 left_hand
    (0.17, 0.47, 0.0),  # 8 right_shoulder
    (0.21, 0.23, 0.0),  # 9 right_elbow
    (0.23, 0.0, 0.0),  # 10 right_wrist
    (0.235, -0.07, 0.0),  # 11 right_hand
    (-0.08, -0.02, 0.0),  # 12 left_hip
    (-0.09, -0.38, 0.0),  # 13 left_knee
    (-0.09, -0.74, 0.02),  # 14 left_ankle
    (-0.09, -0.78, -0.09),  # 15 left_foot
    (0.08, -0.02, 0.0),  # 16 right_hip
    (0.09, -0.38, 0.0),  # 17 right_knee
    (0.09, -0.74, 0.02),  # 18 right_ankle
    (0.09, -0.78, -0.09),  # 19 right_foot
    (0.0, 0.47, 0.0),  # 20 spine_shoulder
    (-0.24, -0.14, 0.0),  # 21 left_hand_tip
    (-0.21, -0.06, -0.03),  # 22 left_thumb
    (0.24, -0.14, 0.0),  # 23 right_hand_tip
    (0.21, -0.06, -0.03),  # 24 right_thumb
)

#: Joints for which Kinect v2 reports no orientation (all four quaternion values 0): the ends of
#: the chains, thumbs included.
LEAF_JOINTS: Final[tuple[int, ...]] = tuple(
    joint_index(name)
    for name in (
        "head",
        "left_foot",
        "right_foot",
        "left_hand_tip",
        "left_thumb",
        "right_hand_tip",
        "right_thumb",
    )
)

#: Left/right counterpart of every joint (itself on the midline), for mirrored motions.
MIRROR: Final[tuple[int, ...]] = tuple(joint_index(_other_side(name)) for name in JOINT_NAMES)
