"""NTU's 25 Kinect joints -> another layout's joints, for synthetic data in any built-in layout.

Each target joint is a fixed blend of NTU joints plus a small offset in the body's own frame
(``lateral`` towards the body's right, ``up`` along the spine, ``forward`` the way it faces), in
metres of the rest pose and scaled with the body. So the face keypoints of ``coco17`` hang off
NTU's head in front of it, ``openpose25``'s neck is NTU's spine-shoulder and its mid-hip the
spine base, toes and heels sit around NTU's foot and ankle, and ``mediapipe33``'s hand points
come from NTU's hand, hand tip and thumb. ``openpose_coco18`` is coco17 plus that neck, ``halpe26``
adds a head top above NTU's head, the mid-hip and the foot points, and ``kinect_v1_20`` is NTU's
joints without the v2 additions. The motion (what the classes differ by) is NTU's, so a
model learns the same classes in every layout.

Offsets are written for the left side; `_both` mirrors a joint to the right side.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from skelact.layouts import NTU25, get_layout

__all__ = ["SYNTH_LAYOUTS", "dominant_source", "retarget"]

#: (target joint, ((NTU joint, weight), ...), (lateral, up, forward) offset in metres)
Rule = tuple[str, tuple[tuple[str, float], ...], tuple[float, float, float]]


def _one(target: str, blend: tuple[tuple[str, float], ...], offset=(0.0, 0.0, 0.0)) -> Rule:
    return (target, blend, offset)


def _both(name: str, blend: tuple[tuple[str, float], ...], offset=(0.0, 0.0, 0.0)) -> list[Rule]:
    """``left_<name>`` from the left NTU joints and ``right_<name>`` mirrored."""
    lat, up, fwd = offset
    right = tuple((j.replace("left_", "right_"), w) for j, w in blend)
    return [(f"left_{name}", blend, (lat, up, fwd)), (f"right_{name}", right, (-lat, up, fwd))]


def _same(*names: str) -> list[Rule]:
    """Joints NTU has under the same name (both sides)."""
    return [r for n in names for r in _both(n, ((f"left_{n}", 1.0),))]


_HEAD = (("head", 1.0),)
_NOSE = _one("nose", _HEAD, (0.0, -0.02, 0.09))
_EYES = _both("eye", _HEAD, (-0.035, 0.01, 0.07))
_EARS = _both("ear", _HEAD, (-0.075, -0.01, 0.0))
_LIMBS = _same("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
_HAND_MID = (("left_hand", 0.5), ("left_hand_tip", 0.5))

_RULES: dict[str, list[Rule]] = {
    "coco17": [_NOSE, *_EYES, *_EARS, *_LIMBS],
    "openpose25": [
        _NOSE,
        _one("neck", (("spine_shoulder", 1.0),)),
        _one("mid_hip", (("spine_base", 1.0),)),
        *_EYES,
        *_EARS,
        *_LIMBS,
        *_both("big_toe", (("left_foot", 1.0),), (0.01, -0.01, 0.04)),
        *_both("small_toe", (("left_foot", 1.0),), (-0.04, -0.01, 0.02)),
        *_both("heel", (("left_ankle", 1.0),), (0.0, -0.05, -0.05)),
    ],
    "mediapipe33": [
        _NOSE,
        *_both("eye_inner", _HEAD, (-0.015, 0.01, 0.08)),
        *_EYES,
        *_both("eye_outer", _HEAD, (-0.05, 0.01, 0.06)),
        *_EARS,
        _one("mouth_left", _HEAD, (-0.025, -0.06, 0.08)),
        _one("mouth_right", _HEAD, (0.025, -0.06, 0.08)),
        *_LIMBS,
        *_both("pinky", _HAND_MID, (-0.02, 0.0, 0.0)),
        *_both("index", _HAND_MID, (0.0, 0.0, 0.02)),
        *_both("thumb", (("left_thumb", 1.0),)),
        *_both("heel", (("left_ankle", 1.0),), (0.0, -0.05, -0.05)),
        *_both("foot_index", (("left_foot", 1.0),), (0.0, -0.01, 0.04)),
    ],
    "ntu25": [_one(j, ((j, 1.0),)) for j in NTU25.joints],
    "openpose_coco18": [_NOSE, _one("neck", (("spine_shoulder", 1.0),)), *_EYES, *_EARS, *_LIMBS],
    "halpe26": [
        _NOSE,
        *_EYES,
        *_EARS,
        *_LIMBS,
        _one("head", _HEAD, (0.0, 0.1, 0.0)),
        _one("neck", (("spine_shoulder", 1.0),)),
        _one("hip", (("spine_base", 1.0),)),
        *_both("big_toe", (("left_foot", 1.0),), (0.01, -0.01, 0.04)),
        *_both("small_toe", (("left_foot", 1.0),), (-0.04, -0.01, 0.02)),
        *_both("heel", (("left_ankle", 1.0),), (0.0, -0.05, -0.05)),
    ],
    # Kinect v1's shoulder centre sits where v2's spine-shoulder does (v2 split off the neck).
    "kinect_v1_20": [
        _one("hip_center", (("spine_base", 1.0),)),
        _one("spine", (("spine_mid", 1.0),)),
        _one("shoulder_center", (("spine_shoulder", 1.0),)),
        _one("head", _HEAD),
        *_same("shoulder", "elbow", "wrist", "hand", "hip", "knee", "ankle", "foot"),
    ],
}
#: Layouts ``skelact synth --layout`` can write.
SYNTH_LAYOUTS: tuple[str, ...] = tuple(_RULES)

_REST_SPINE = 0.47  # spine base -> spine shoulder in the rest pose, metres
_BASE, _TOP = NTU25.index("spine_base"), NTU25.index("spine_shoulder")
_LSH, _RSH = NTU25.index("left_shoulder"), NTU25.index("right_shoulder")


@cache
def _tables(layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(blend V x 25, offsets V x 3) in the target layout's joint order."""
    rules = {target: (blend, offset) for target, blend, offset in _RULES[layout]}
    joints = get_layout(layout).joints
    assert sorted(rules) == sorted(joints), layout  # every joint has exactly one rule
    blend = np.zeros((len(joints), NTU25.num_joints))
    offsets = np.zeros((len(joints), 3))
    for v, joint in enumerate(joints):
        sources, offset = rules[joint]
        for source, weight in sources:
            blend[v, NTU25.index(source)] = weight
        offsets[v] = offset
    return blend, offsets


def dominant_source(layout: str) -> np.ndarray:
    """Per target joint, the NTU joint with the largest weight (whose tracking state it takes)."""
    return _tables(layout)[0].argmax(1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def retarget(xyz: np.ndarray, layout: str) -> np.ndarray:
    """NTU joints ``(T, 25, 3)`` (camera space, metres) -> the layout's ``(T, V, 3)``."""
    blend, offsets = _tables(layout)
    spine = xyz[:, _TOP] - xyz[:, _BASE]
    up = _unit(spine)
    shoulders = xyz[:, _RSH] - xyz[:, _LSH]
    lateral = _unit(shoulders - (shoulders * up).sum(-1, keepdims=True) * up)
    forward = np.cross(up, lateral)
    scale = np.linalg.norm(spine, axis=-1)[:, None, None] / _REST_SPINE
    frame = np.stack([lateral, up, forward], axis=1)  # (T, 3 axes, 3 coordinates)
    return np.einsum("vj,tjc->tvc", blend, xyz) + scale * (offsets @ frame)
