"""The motion of every action class: joint-angle channels that name the joints they move.

Each class has a fixed program (a few channels with a waveform, amplitude, frequency and phase),
independent of the seed, so data sets drawn with different seeds share the same classes. The
programs name joints (``"right_elbow"``); `skelact.data.synth.kinematics` turns the names into
indices of `skelact.skeleton` when it poses the body, so the tables read like a description of
the movement and follow the layout if it changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skelact.data.synth.plan import two_person_actions
from skelact.layouts import NTU25

JOINT_NAMES, MIRROR = NTU25.joints, NTU25.mirror

#: A channel: (joint, axis, wave, amplitude, cycles per sequence, phase). ``joint`` names the joint
#: at the END of a bone: the channel rotates that bone about its parent joint, moving it and
#: everything below it ("right_elbow" swings the upper arm at the shoulder, "right_wrist" bends
#: the elbow), or is `ROOT` for the whole body. Axis 'x' = pitch (positive swings a hanging bone
#: forward, towards the camera), 'y' = twist, 'z' = roll (positive swings a right-side bone
#: outwards); root axes 'tx' 'ty' 'tz' in metres of a 1.0-scale body and 'yaw' in radians.
Channel = tuple[str, str, str, float, float, float]
ROOT = "root"

#: Left/right counterpart of every joint by name (itself on the midline).
_MIRROR_NAME = {JOINT_NAMES[j]: JOINT_NAMES[m] for j, m in enumerate(MIRROR)}


def _mirror(chs: Sequence[Channel]) -> list[Channel]:
    """The same motion performed with the other side of the body."""
    out = []
    for joint, axis, wave, amp, freq, ph in chs:
        flip = axis in ("y", "z", "tx", "yaw")
        out.append((_MIRROR_NAME.get(joint, joint), axis, wave, -amp if flip else amp, freq, ph))
    return out


def _hand_to_mouth(wave: str, freq: float = 1.0, ph: float = 0.0) -> list[Channel]:
    return [
        ("right_elbow", "x", wave, 0.8, freq, ph),
        ("right_wrist", "x", wave, 2.3, freq, ph),
        ("right_elbow", "z", wave, -0.25, freq, ph),
    ]


def _seated(wave: str) -> list[Channel]:
    return [
        (ROOT, "ty", wave, -0.34, 1, 0),
        ("left_knee", "x", wave, 1.3, 1, 0),
        ("right_knee", "x", wave, 1.3, 1, 0),
        ("left_ankle", "x", wave, -2.0, 1, 0),
        ("right_ankle", "x", wave, -2.0, 1, 0),
        ("spine_mid", "x", wave, -0.3, 1, 0),
        ("left_elbow", "x", wave, 0.3, 1, 0),
        ("right_elbow", "x", wave, 0.3, 1, 0),
    ]


_PI = math.pi
_WALK = [
    ("left_knee", "x", "osc", 0.45, 3, 0),
    ("right_knee", "x", "osc", 0.45, 3, _PI),
    ("left_ankle", "x", "bump", -0.6, 6, 0),
    ("right_ankle", "x", "bump", -0.6, 6, _PI),
    ("left_elbow", "x", "osc", 0.35, 3, _PI),
    ("right_elbow", "x", "osc", 0.35, 3, 0),
]

#: The motion library.  The first twelve loosely echo NTU's first actions (drink, eat, brush
#: teeth, brush hair, drop, pick up, throw, sit down, stand up, clap, read, write); the rest are
#: generic movements.  Classes beyond the library reuse it with variations (see class_program).
MOTION_LIBRARY: tuple[tuple[str, list[Channel]], ...] = (
    (
        "drink",
        _hand_to_mouth("bump")
        + [("neck", "x", "bump", 0.3, 1, 0), ("head", "x", "bump", 0.2, 1, 0)],
    ),
    ("eat", _hand_to_mouth("bump", 3) + _mirror(_hand_to_mouth("bump", 3, _PI))),
    (
        "brush_teeth",
        _hand_to_mouth("hold")
        + [("right_wrist", "z", "osc", 0.35, 7, 0), ("right_elbow", "z", "osc", 0.15, 7, 0)],
    ),
    (
        "brush_hair",
        [
            ("right_elbow", "z", "hold", 2.4, 1, 0),
            ("right_wrist", "z", "hold", 1.2, 1, 0),
            ("right_elbow", "x", "osc", 0.35, 4, 0),
        ],
    ),
    (
        "drop",
        [
            ("right_elbow", "x", "bump", 1.2, 1, 0),
            ("right_wrist", "x", "bump", 0.6, 1, 0),
            ("neck", "x", "ramp", -0.5, 1, 0),
            ("spine_mid", "x", "ramp", -0.25, 1, 0),
        ],
    ),
    (
        "pick_up",
        [
            ("spine_mid", "x", "bump", -1.2, 1, 0),
            ("neck", "x", "bump", -0.3, 1, 0),
            ("left_knee", "x", "bump", 0.6, 1, 0),
            ("right_knee", "x", "bump", 0.6, 1, 0),
            ("left_ankle", "x", "bump", -0.9, 1, 0),
            ("right_ankle", "x", "bump", -0.9, 1, 0),
            (ROOT, "ty", "bump", -0.12, 1, 0),
            ("right_elbow", "x", "bump", 0.9, 1, 0),
        ],
    ),
    (
        "throw",
        [
            ("right_elbow", "z", "bump", 1.2, 1, 0),
            ("right_elbow", "x", "bump", 2.2, 1, 0.8),
            ("right_wrist", "x", "bump", 1.5, 2, 0),
            ("spine_mid", "y", "bump", 0.4, 1, 0.8),
            ("left_knee", "x", "bump", 0.4, 1, 0),
        ],
    ),
    ("sit_down", _seated("ramp")),
    ("stand_up", _seated("fall")),
    (
        "clap",
        [
            ("left_elbow", "x", "hold", 1.2, 1, 0),
            ("right_elbow", "x", "hold", 1.2, 1, 0),
            ("left_wrist", "x", "hold", 0.7, 1, 0),
            ("right_wrist", "x", "hold", 0.7, 1, 0),
            ("right_elbow", "z", "hold", -0.2, 1, 0),
            ("left_elbow", "z", "hold", 0.2, 1, 0),
            ("right_elbow", "z", "osc", 0.3, 5, 0),
            ("left_elbow", "z", "osc", -0.3, 5, 0),
        ],
    ),
    (
        "read",
        [
            ("left_elbow", "x", "hold", 0.5, 1, 0),
            ("right_elbow", "x", "hold", 0.5, 1, 0),
            ("left_wrist", "x", "hold", 1.4, 1, 0),
            ("right_wrist", "x", "hold", 1.4, 1, 0),
            ("neck", "x", "hold", -0.4, 1, 0),
            ("head", "x", "hold", -0.2, 1, 0),
            ("neck", "z", "osc", 0.15, 2, 0),
        ],
    ),
    (
        "write",
        [
            ("left_elbow", "x", "hold", 0.4, 1, 0),
            ("left_wrist", "x", "hold", 1.5, 1, 0),
            ("right_elbow", "x", "hold", 0.5, 1, 0),
            ("right_wrist", "x", "hold", 1.3, 1, 0),
            ("right_wrist", "z", "osc", 0.2, 8, 0),
            ("right_hand", "x", "osc", 0.4, 8, 0),
            ("neck", "x", "hold", -0.35, 1, 0),
        ],
    ),
    (
        "wave_right",
        [
            ("right_elbow", "z", "hold", 2.5, 1, 0),
            ("right_wrist", "x", "hold", 0.4, 1, 0),
            ("right_wrist", "z", "osc", 0.6, 4, 0),
        ],
    ),
    (
        "wave_left",
        _mirror(
            [
                ("right_elbow", "z", "hold", 2.5, 1, 0),
                ("right_wrist", "x", "hold", 0.4, 1, 0),
                ("right_wrist", "z", "osc", 0.6, 4, 0),
            ]
        ),
    ),
    (
        "kick_right",
        [
            ("right_knee", "x", "bump", 1.3, 2, 0),
            ("right_ankle", "x", "bump", -0.5, 2, 0),
            ("left_elbow", "z", "bump", -0.3, 2, 0),
        ],
    ),
    (
        "kick_left",
        _mirror(
            [
                ("right_knee", "x", "bump", 1.3, 2, 0),
                ("right_ankle", "x", "bump", -0.5, 2, 0),
                ("left_elbow", "z", "bump", -0.3, 2, 0),
            ]
        ),
    ),
    (
        "bow",
        [
            ("spine_mid", "x", "bump", -1.0, 1, 0),
            ("neck", "x", "bump", -0.4, 1, 0),
            ("left_elbow", "x", "bump", 0.3, 1, 0),
            ("right_elbow", "x", "bump", 0.3, 1, 0),
        ],
    ),
    (
        "jump",
        [
            (ROOT, "ty", "bump", 0.18, 3, 0),
            ("left_knee", "x", "bump", 0.5, 3, _PI),
            ("right_knee", "x", "bump", 0.5, 3, _PI),
            ("left_ankle", "x", "bump", -0.9, 3, _PI),
            ("right_ankle", "x", "bump", -0.9, 3, _PI),
            ("left_elbow", "z", "bump", -0.5, 3, 0),
            ("right_elbow", "z", "bump", 0.5, 3, 0),
        ],
    ),
    (
        "shake_head",
        [
            ("neck", "y", "osc", 0.6, 3, 0),
            ("neck", "z", "osc", 0.3, 3, 0),
            ("head", "z", "osc", 0.3, 3, 0),
        ],
    ),
    (
        "turn_around",
        [
            (ROOT, "yaw", "ramp", 3.0, 1, 0),
            ("left_knee", "x", "osc", 0.3, 4, 0),
            ("right_knee", "x", "osc", 0.3, 4, _PI),
        ],
    ),
    (
        "stretch_up",
        [
            ("right_elbow", "z", "hold", 2.8, 1, 0),
            ("left_elbow", "z", "hold", -2.8, 1, 0),
            ("spine_mid", "x", "hold", 0.15, 1, 0),
        ],
    ),
    (
        "punch",
        [
            ("right_elbow", "x", "hold", 1.4, 1, 0),
            ("right_wrist", "x", "hold", 1.6, 1, 0),
            ("right_wrist", "x", "bump", -1.5, 4, 0),
            ("spine_mid", "y", "osc", 0.2, 4, 0),
        ],
    ),
    ("walk", _WALK + [(ROOT, "tz", "ramp", -0.9, 1, 0)]),
    (
        "side_bend",
        [
            ("spine_mid", "z", "osc", 0.35, 2, 0),
            ("spine_shoulder", "z", "osc", 0.2, 2, 0),
            ("right_elbow", "z", "hold", 0.3, 1, 0),
            ("left_elbow", "z", "hold", -0.3, 1, 0),
        ],
    ),
    (
        "arm_circles",
        [
            ("right_elbow", "z", "hold", 1.4, 1, 0),
            ("left_elbow", "z", "hold", -1.4, 1, 0),
            ("right_elbow", "x", "osc", 0.8, 3, 0),
            ("left_elbow", "x", "osc", 0.8, 3, 0),
            ("right_elbow", "z", "osc", 0.5, 3, _PI / 2),
            ("left_elbow", "z", "osc", -0.5, 3, _PI / 2),
        ],
    ),
    (
        "hop",
        [
            ("left_knee", "x", "hold", 0.9, 1, 0),
            ("left_ankle", "x", "hold", -1.4, 1, 0),
            (ROOT, "ty", "bump", 0.1, 5, 0),
            ("right_ankle", "x", "bump", -0.4, 5, 0),
        ],
    ),
    (
        "salute",
        [
            ("right_elbow", "z", "hold", 1.4, 1, 0),
            ("right_elbow", "x", "hold", 0.6, 1, 0),
            ("right_wrist", "x", "hold", 2.2, 1, 0),
            ("neck", "x", "hold", 0.1, 1, 0),
        ],
    ),
    (
        "hands_on_head",
        [
            ("left_elbow", "z", "hold", -1.9, 1, 0),
            ("right_elbow", "z", "hold", 1.9, 1, 0),
            ("left_wrist", "z", "hold", -1.6, 1, 0),
            ("right_wrist", "z", "hold", 1.6, 1, 0),
        ],
    ),
    (
        "squats",
        [
            (ROOT, "ty", "bump", -0.3, 3, 0),
            ("left_knee", "x", "bump", 1.2, 3, 0),
            ("right_knee", "x", "bump", 1.2, 3, 0),
            ("left_ankle", "x", "bump", -1.8, 3, 0),
            ("right_ankle", "x", "bump", -1.8, 3, 0),
            ("left_elbow", "x", "bump", 1.2, 3, 0),
            ("right_elbow", "x", "bump", 1.2, 3, 0),
        ],
    ),
    (
        "point",
        [
            ("right_elbow", "x", "hold", 1.5, 1, 0),
            ("right_elbow", "z", "hold", 0.4, 1, 0),
            ("neck", "y", "hold", -0.3, 1, 0),
        ],
    ),
)

#: Two-person distance patterns: (wave, change of the distance between the two people in m).
_PAIR_PATTERNS: tuple[tuple[str, float], ...] = (
    ("ramp", -0.6),  # approach
    ("ramp", 0.7),  # move apart
    ("bump", -0.5),  # approach then back off
    ("osc", 0.25),  # sway
)


@dataclass(frozen=True)
class ClassProgram:
    """The motion of one action class: channels for each person, and for pairs how they move."""

    action: int
    name: str
    person_a: tuple[Channel, ...]
    person_b: tuple[Channel, ...] = ()
    pair_wave: str = ""
    pair_delta: float = 0.0

    @property
    def two_person(self) -> bool:
        return bool(self.pair_wave)


def class_program(action: int, num_classes: int) -> ClassProgram:
    """The fixed motion program of an action (independent of the seed).

    Actions 1..len(MOTION_LIBRARY) use the library entries as they are; later ones reuse them
    mirrored (other hand), at another tempo, and mixed with a weaker second movement, so all 120
    classes differ.
    """
    n_lib = len(MOTION_LIBRARY)
    c = action - 1
    name, chs = MOTION_LIBRARY[c % n_lib]
    chs = list(chs)
    variant = c // n_lib
    if variant:
        rng = np.random.default_rng([0xC1A55, action])
        tempo = (1.0, 1.7, 0.6, 2.3)[variant % 4]
        if variant % 2:
            chs = _mirror(chs)
            name += "_mirrored"
        second_name, second = MOTION_LIBRARY[(c * 7 + 3) % n_lib]
        if second_name == MOTION_LIBRARY[c % n_lib][0]:
            second_name, second = MOTION_LIBRARY[(c * 7 + 4) % n_lib]
        scale = float(rng.uniform(0.8, 1.2))
        chs = [
            (b, ax, w, a * scale, f * tempo if w in ("osc", "bump") else f, ph)
            for b, ax, w, a, f, ph in chs
        ] + [(b, ax, w, a * 0.5, f, ph + 1.0) for b, ax, w, a, f, ph in second if b != ROOT]
        name += f"+{second_name}@x{tempo:g}"
    if action not in two_person_actions(num_classes):
        return ClassProgram(action, name, tuple(chs))
    # Interaction: person B answers with another library movement, half a beat later, while the
    # distance between the two follows a class-specific pattern.
    b_name, b_chs = MOTION_LIBRARY[(c * 5 + 11) % n_lib]
    b = tuple((bo, ax, w, a, f, ph + 0.8) for bo, ax, w, a, f, ph in b_chs if bo != ROOT)
    wave, delta = _PAIR_PATTERNS[c % len(_PAIR_PATTERNS)]
    return ClassProgram(action, f"{name}&{b_name}", tuple(chs), b, wave, delta)
