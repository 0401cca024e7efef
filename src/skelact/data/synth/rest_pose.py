"""The synthetic generator's body: NTU's 25 Kinect joints in a rest pose, and which report no
orientation. The wiring itself (names, bones, centre) is the ``ntu25`` layout
(:mod:`skelact.layouts`); only what a Kinect-like *generator* needs beyond it lives here.
"""

from __future__ import annotations

from typing import Final

from skelact.layouts import NTU25

NUM_JOINTS: Final[int] = NTU25.num_joints
joint_index = NTU25.index

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
