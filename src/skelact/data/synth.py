"""Synthetic NTU RGB+D raw data: ``.skeleton`` files in the exact Kinect v2 text format.

Why this exists: the NTU RGB+D data set cannot be downloaded without a licence agreement, yet the
whole pipeline (preprocess -> train -> test -> report) must run end to end on a fresh machine and
in CI.  This module writes files that a reader of real NTU files cannot tell apart by format, that
exercise the awkward cases real files have (empty frames, short-lived extra bodies, body-ID
changes, two-person actions, inferred joints, scientific-notation floats, CRLF line endings), and
whose classes differ by *learnable* motion, so a model trained on them must reach well above chance.

How a sample is made:

* every action class has a fixed motion program (a few joint-angle channels with a waveform,
  amplitude, frequency and phase), independent of the seed, so data sets drawn with different
  seeds share the same classes;
* the program drives forward kinematics of :data:`skelact.skeleton.REST_POSE`, scaled per subject
  (``Pxxx``), seen from a per-camera yaw (``Cxxx``: -45/0/+45 degrees), at a per-setup distance,
  height and tilt (``Sxxx``), with a per-sample time warp, style jitter and Gaussian noise;
* classes at the end of the label range are two-person interactions (NTU's own actions 50-60 and
  106-120 when 60 or more classes are drawn);
* file names are chosen so that every benchmark split (NTU 60 xsub/xview, NTU 120 xsub/xset) has
  train and val samples of every class, and never collide with NTU's missing-skeleton lists.

Every file depends only on (seed, action, sample index), so generation is deterministic
(byte-identical files) and can run in parallel.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from skelact.atomic import atomic_write_bytes
from skelact.data import ntu
from skelact.skeleton import INWARD_BONES, LEAF_JOINTS, MIRROR, NUM_JOINTS, REST_POSE

# ----------------------------------------------------------------------------------------------
# NTU naming rules (the split lists themselves live in skelact.data.ntu)

MAX_CLASSES = 120
MAX_SAMPLES_PER_CLASS = 1000
#: NTU 60 was recorded in setups 1-17 with subjects 1-40; NTU 120 added setups 18-32, P001-P106.
_NTU60_SETUPS = range(1, 18)
_NTU120_SETUPS = range(18, 33)
_NTU60_SUBJECTS = range(1, 41)
_NTU120_SUBJECTS = range(1, 107)

#: Benchmarks whose train/val coverage synth guarantees: (dataset, benchmark).
BENCHMARKS: tuple[tuple[str, str], ...] = (
    ("ntu60", "xsub"),
    ("ntu60", "xview"),
    ("ntu120", "xsub"),
    ("ntu120", "xset"),
)


def two_person_actions(num_classes: int) -> tuple[int, ...]:
    """Action numbers (1-based) that synth renders as two-person interactions.

    With 60 or more classes these are NTU's own interaction classes (A050-A060, A106-A120); with
    fewer, the last ~20 % of the classes, so small data sets still contain interactions.
    """
    if num_classes >= 60:
        return tuple(a for a in range(1, num_classes + 1) if 50 <= a <= 60 or a >= 106)
    n = round(num_classes * 0.2)
    return tuple(range(num_classes - n + 1, num_classes + 1))


def _missing_names() -> frozenset[str]:
    """Both NTU missing-sample lists: preprocessing skips these names, so synth never uses them."""
    return ntu.missing_samples("ntu60") | ntu.missing_samples("ntu120")


@dataclass(frozen=True)
class SampleSpec:
    """One planned sample: its NTU codes and its index within its class."""

    setup: int
    camera: int
    subject: int
    replication: int
    action: int
    index: int

    @property
    def name(self) -> str:
        return (
            f"S{self.setup:03d}C{self.camera:03d}P{self.subject:03d}"
            f"R{self.replication:03d}A{self.action:03d}"
        )


def plan_samples(num_classes: int, samples_per_class: int, seed: int) -> list[SampleSpec]:
    """Choose the names of all samples.

    Three cyclic patterns with co-prime periods decide, per sample index k, the xsub side
    (train when k % 5 is even: 60 %), the camera (2, 1, 3: two thirds train for xview) and the
    setup parity (even = xset train).  Sample 0 is train and sample 1 val for every benchmark, so
    two samples per class already cover every split; the periods make all combinations occur.
    Subject, setup and replication within those constraints are drawn at random.
    """
    _check_counts(num_classes, samples_per_class)
    missing = _missing_names()
    specs: list[SampleSpec] = []
    for action in range(1, num_classes + 1):
        rng = np.random.default_rng([seed, action, 0x5EED])
        ntu60 = action <= 60
        subjects = _NTU60_SUBJECTS if ntu60 else _NTU120_SUBJECTS
        setups = _NTU60_SETUPS if ntu60 else _NTU120_SETUPS
        train_subjects = ntu.TRAIN_SUBJECTS_60 if ntu60 else ntu.TRAIN_SUBJECTS_120
        used: set[str] = set()
        for k in range(samples_per_class):
            xsub_train = k % 5 in (0, 2, 4)
            camera = (2, 1, 3)[k % 3]
            even = k % 2 == 0
            subj_pool = [p for p in subjects if (p in train_subjects) == xsub_train]
            setup_pool = [s for s in setups if (s % 2 == 0) == even]
            spec = None
            for _ in range(64):
                cand = SampleSpec(
                    setup=int(rng.choice(setup_pool)),
                    camera=camera,
                    subject=int(rng.choice(subj_pool)),
                    replication=int(rng.integers(1, 3)),
                    action=action,
                    index=k,
                )
                if cand.name not in used and cand.name not in missing:
                    spec = cand
                    break
            if spec is None:  # crowded cell: take the first free combination, deterministically
                spec = next(
                    (
                        c
                        for s in setup_pool
                        for p in subj_pool
                        for r in (1, 2)
                        if (c := SampleSpec(s, camera, p, r, action, k)).name not in used
                        and c.name not in missing
                    ),
                    None,
                )
            if spec is None:
                raise ValueError(
                    f"cannot find {samples_per_class} distinct valid names for action {action}"
                )
            used.add(spec.name)
            specs.append(spec)
    return specs


def _check_counts(num_classes: int, samples_per_class: int) -> None:
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be between 2 and {MAX_CLASSES}, got {num_classes}")
    if not 2 <= samples_per_class <= MAX_SAMPLES_PER_CLASS:
        raise ValueError(
            "samples_per_class must be between 2 (one train and one val sample per split) and "
            f"{MAX_SAMPLES_PER_CLASS}, got {samples_per_class}"
        )


def split_counts(specs: Sequence[SampleSpec]) -> dict[str, dict[str, int]]:
    """Samples per benchmark part, e.g. {'ntu60_xsub': {'train': 180, 'val': 120}, ...}.

    Only samples that belong to the dataset count (NTU 60: actions 1-60 of setups 1-17).
    """
    out: dict[str, dict[str, int]] = {}
    for dataset, bench in BENCHMARKS:
        spec = ntu.dataset_spec(dataset)
        counts = {"train": 0, "val": 0}
        for s in specs:
            name = ntu.parse_sample_name(s.name)
            if spec.contains(name):
                counts[ntu.split_of(name, dataset, bench)] += 1
        out[f"{dataset}_{bench}"] = counts
    return out


# ----------------------------------------------------------------------------------------------
# Motion programs

# A channel: (bone, axis, wave, amplitude, cycles per sequence, phase).  ``bone`` is the joint at
# the END of a bone (its rotation moves that bone and everything below it) or -1 for the whole
# body; axis 'x' = pitch (positive swings a hanging bone forward, towards the camera), 'y' = twist,
# 'z' = roll (positive swings a right-side bone outwards); root axes 'tx' 'ty' 'tz' in metres of a
# 1.0-scale body and 'yaw' in radians.
Channel = tuple[int, str, str, float, float, float]
ROOT = -1


def _mirror(chs: Sequence[Channel]) -> list[Channel]:
    """The same motion performed with the other side of the body."""
    out = []
    for bone, axis, wave, amp, freq, ph in chs:
        flip = axis in ("y", "z", "tx", "yaw")
        out.append(
            (MIRROR[bone] if bone >= 0 else bone, axis, wave, -amp if flip else amp, freq, ph)
        )
    return out


def _hand_to_mouth(wave: str, freq: float = 1.0, ph: float = 0.0) -> list[Channel]:
    return [
        (9, "x", wave, 0.8, freq, ph),
        (10, "x", wave, 2.3, freq, ph),
        (9, "z", wave, -0.25, freq, ph),
    ]


def _seated(wave: str) -> list[Channel]:
    return [
        (ROOT, "ty", wave, -0.34, 1, 0),
        (13, "x", wave, 1.3, 1, 0),
        (17, "x", wave, 1.3, 1, 0),
        (14, "x", wave, -2.0, 1, 0),
        (18, "x", wave, -2.0, 1, 0),
        (1, "x", wave, -0.3, 1, 0),
        (5, "x", wave, 0.3, 1, 0),
        (9, "x", wave, 0.3, 1, 0),
    ]


_PI = math.pi
_WALK = [
    (13, "x", "osc", 0.45, 3, 0),
    (17, "x", "osc", 0.45, 3, _PI),
    (14, "x", "bump", -0.6, 6, 0),
    (18, "x", "bump", -0.6, 6, _PI),
    (5, "x", "osc", 0.35, 3, _PI),
    (9, "x", "osc", 0.35, 3, 0),
]

#: The motion library.  The first twelve loosely echo NTU's first actions (drink, eat, brush
#: teeth, brush hair, drop, pick up, throw, sit down, stand up, clap, read, write); the rest are
#: generic movements.  Classes beyond the library reuse it with variations (see class_program).
MOTION_LIBRARY: tuple[tuple[str, list[Channel]], ...] = (
    ("drink", _hand_to_mouth("bump") + [(2, "x", "bump", 0.3, 1, 0), (3, "x", "bump", 0.2, 1, 0)]),
    ("eat", _hand_to_mouth("bump", 3) + _mirror(_hand_to_mouth("bump", 3, _PI))),
    (
        "brush_teeth",
        _hand_to_mouth("hold") + [(10, "z", "osc", 0.35, 7, 0), (9, "z", "osc", 0.15, 7, 0)],
    ),
    (
        "brush_hair",
        [(9, "z", "hold", 2.4, 1, 0), (10, "z", "hold", 1.2, 1, 0), (9, "x", "osc", 0.35, 4, 0)],
    ),
    (
        "drop",
        [
            (9, "x", "bump", 1.2, 1, 0),
            (10, "x", "bump", 0.6, 1, 0),
            (2, "x", "ramp", -0.5, 1, 0),
            (1, "x", "ramp", -0.25, 1, 0),
        ],
    ),
    (
        "pick_up",
        [
            (1, "x", "bump", -1.2, 1, 0),
            (2, "x", "bump", -0.3, 1, 0),
            (13, "x", "bump", 0.6, 1, 0),
            (17, "x", "bump", 0.6, 1, 0),
            (14, "x", "bump", -0.9, 1, 0),
            (18, "x", "bump", -0.9, 1, 0),
            (ROOT, "ty", "bump", -0.12, 1, 0),
            (9, "x", "bump", 0.9, 1, 0),
        ],
    ),
    (
        "throw",
        [
            (9, "z", "bump", 1.2, 1, 0),
            (9, "x", "bump", 2.2, 1, 0.8),
            (10, "x", "bump", 1.5, 2, 0),
            (1, "y", "bump", 0.4, 1, 0.8),
            (13, "x", "bump", 0.4, 1, 0),
        ],
    ),
    ("sit_down", _seated("ramp")),
    ("stand_up", _seated("fall")),
    (
        "clap",
        [
            (5, "x", "hold", 1.2, 1, 0),
            (9, "x", "hold", 1.2, 1, 0),
            (6, "x", "hold", 0.7, 1, 0),
            (10, "x", "hold", 0.7, 1, 0),
            (9, "z", "hold", -0.2, 1, 0),
            (5, "z", "hold", 0.2, 1, 0),
            (9, "z", "osc", 0.3, 5, 0),
            (5, "z", "osc", -0.3, 5, 0),
        ],
    ),
    (
        "read",
        [
            (5, "x", "hold", 0.5, 1, 0),
            (9, "x", "hold", 0.5, 1, 0),
            (6, "x", "hold", 1.4, 1, 0),
            (10, "x", "hold", 1.4, 1, 0),
            (2, "x", "hold", -0.4, 1, 0),
            (3, "x", "hold", -0.2, 1, 0),
            (2, "z", "osc", 0.15, 2, 0),
        ],
    ),
    (
        "write",
        [
            (5, "x", "hold", 0.4, 1, 0),
            (6, "x", "hold", 1.5, 1, 0),
            (9, "x", "hold", 0.5, 1, 0),
            (10, "x", "hold", 1.3, 1, 0),
            (10, "z", "osc", 0.2, 8, 0),
            (11, "x", "osc", 0.4, 8, 0),
            (2, "x", "hold", -0.35, 1, 0),
        ],
    ),
    (
        "wave_right",
        [(9, "z", "hold", 2.5, 1, 0), (10, "x", "hold", 0.4, 1, 0), (10, "z", "osc", 0.6, 4, 0)],
    ),
    (
        "wave_left",
        _mirror(
            [(9, "z", "hold", 2.5, 1, 0), (10, "x", "hold", 0.4, 1, 0), (10, "z", "osc", 0.6, 4, 0)]
        ),
    ),
    (
        "kick_right",
        [(17, "x", "bump", 1.3, 2, 0), (18, "x", "bump", -0.5, 2, 0), (5, "z", "bump", -0.3, 2, 0)],
    ),
    (
        "kick_left",
        _mirror(
            [
                (17, "x", "bump", 1.3, 2, 0),
                (18, "x", "bump", -0.5, 2, 0),
                (5, "z", "bump", -0.3, 2, 0),
            ]
        ),
    ),
    (
        "bow",
        [
            (1, "x", "bump", -1.0, 1, 0),
            (2, "x", "bump", -0.4, 1, 0),
            (5, "x", "bump", 0.3, 1, 0),
            (9, "x", "bump", 0.3, 1, 0),
        ],
    ),
    (
        "jump",
        [
            (ROOT, "ty", "bump", 0.18, 3, 0),
            (13, "x", "bump", 0.5, 3, _PI),
            (17, "x", "bump", 0.5, 3, _PI),
            (14, "x", "bump", -0.9, 3, _PI),
            (18, "x", "bump", -0.9, 3, _PI),
            (5, "z", "bump", -0.5, 3, 0),
            (9, "z", "bump", 0.5, 3, 0),
        ],
    ),
    (
        "shake_head",
        [(2, "y", "osc", 0.6, 3, 0), (2, "z", "osc", 0.3, 3, 0), (3, "z", "osc", 0.3, 3, 0)],
    ),
    (
        "turn_around",
        [
            (ROOT, "yaw", "ramp", 3.0, 1, 0),
            (13, "x", "osc", 0.3, 4, 0),
            (17, "x", "osc", 0.3, 4, _PI),
        ],
    ),
    (
        "stretch_up",
        [(9, "z", "hold", 2.8, 1, 0), (5, "z", "hold", -2.8, 1, 0), (1, "x", "hold", 0.15, 1, 0)],
    ),
    (
        "punch",
        [
            (9, "x", "hold", 1.4, 1, 0),
            (10, "x", "hold", 1.6, 1, 0),
            (10, "x", "bump", -1.5, 4, 0),
            (1, "y", "osc", 0.2, 4, 0),
        ],
    ),
    ("walk", _WALK + [(ROOT, "tz", "ramp", -0.9, 1, 0)]),
    (
        "side_bend",
        [
            (1, "z", "osc", 0.35, 2, 0),
            (20, "z", "osc", 0.2, 2, 0),
            (9, "z", "hold", 0.3, 1, 0),
            (5, "z", "hold", -0.3, 1, 0),
        ],
    ),
    (
        "arm_circles",
        [
            (9, "z", "hold", 1.4, 1, 0),
            (5, "z", "hold", -1.4, 1, 0),
            (9, "x", "osc", 0.8, 3, 0),
            (5, "x", "osc", 0.8, 3, 0),
            (9, "z", "osc", 0.5, 3, _PI / 2),
            (5, "z", "osc", -0.5, 3, _PI / 2),
        ],
    ),
    (
        "hop",
        [
            (13, "x", "hold", 0.9, 1, 0),
            (14, "x", "hold", -1.4, 1, 0),
            (ROOT, "ty", "bump", 0.1, 5, 0),
            (18, "x", "bump", -0.4, 5, 0),
        ],
    ),
    (
        "salute",
        [
            (9, "z", "hold", 1.4, 1, 0),
            (9, "x", "hold", 0.6, 1, 0),
            (10, "x", "hold", 2.2, 1, 0),
            (2, "x", "hold", 0.1, 1, 0),
        ],
    ),
    (
        "hands_on_head",
        [
            (5, "z", "hold", -1.9, 1, 0),
            (9, "z", "hold", 1.9, 1, 0),
            (6, "z", "hold", -1.6, 1, 0),
            (10, "z", "hold", 1.6, 1, 0),
        ],
    ),
    (
        "squats",
        [
            (ROOT, "ty", "bump", -0.3, 3, 0),
            (13, "x", "bump", 1.2, 3, 0),
            (17, "x", "bump", 1.2, 3, 0),
            (14, "x", "bump", -1.8, 3, 0),
            (18, "x", "bump", -1.8, 3, 0),
            (5, "x", "bump", 1.2, 3, 0),
            (9, "x", "bump", 1.2, 3, 0),
        ],
    ),
    (
        "point",
        [(9, "x", "hold", 1.5, 1, 0), (9, "z", "hold", 0.4, 1, 0), (2, "y", "hold", -0.3, 1, 0)],
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


# ----------------------------------------------------------------------------------------------
# Kinematics


def _fk_tree() -> tuple[np.ndarray, list[int], np.ndarray]:
    """Parents with spine base as root (the layout's bones point to the neck), order, offsets."""
    adj: dict[int, list[int]] = {j: [] for j in range(NUM_JOINTS)}
    for a, b in INWARD_BONES:
        adj[a].append(b)
        adj[b].append(a)
    parent = np.full(NUM_JOINTS, -1)
    order = [0]
    seen = {0}
    for j in order:  # breadth-first; the list grows while we walk it
        for k in sorted(adj[j]):
            if k not in seen:
                seen.add(k)
                parent[k] = j
                order.append(k)
    rest = np.asarray(REST_POSE, dtype=np.float64)
    offsets = np.zeros_like(rest)
    for j in order[1:]:
        offsets[j] = rest[j] - rest[parent[j]]
    return parent, order, offsets


_PARENT, _ORDER, _OFFSETS = _fk_tree()
_AXIS = {"x": 0, "y": 1, "z": 2}
_ROOT_AXIS = {"tx": 0, "ty": 1, "tz": 2, "yaw": 3}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _wave(kind: str, phi: np.ndarray, freq: float, phase: float) -> np.ndarray:
    """Waveforms over normalised time phi in [0, 1]; all but ramp/fall start and end at rest."""
    env = _smoothstep(phi / 0.2) * _smoothstep((1.0 - phi) / 0.2)
    if kind == "hold":
        return env
    if kind == "osc":
        return env * np.sin(2 * np.pi * freq * phi + phase)
    if kind == "bump":
        return env * (0.5 - 0.5 * np.cos(2 * np.pi * freq * phi + phase))
    if kind == "ramp":
        return _smoothstep((phi - 0.2) / 0.6)
    if kind == "fall":
        return 1.0 - _smoothstep((phi - 0.2) / 0.6)
    raise ValueError(f"unknown waveform {kind!r}")


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about a coordinate axis."""
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    if axis == 0:
        m = (o, z, z, z, c, -s, z, s, c)
    elif axis == 1:
        m = (c, z, s, z, o, z, -s, z, c)
    else:
        m = (c, -s, z, s, c, z, z, z, o)
    return np.stack(m, axis=-1).reshape(*np.shape(angle), 3, 3)


def _pose(
    chs: Sequence[Channel], phi: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward kinematics of a program with per-sample style jitter.

    Returns joint positions (T, V, 3) in the body frame (unit scale), global bone rotations
    (T, V, 3, 3) and root motion (T, 4) = tx, ty, tz, yaw.
    """
    t = len(phi)
    angles = np.zeros((t, NUM_JOINTS, 3))
    root = np.zeros((t, 4))
    tempo = rng.uniform(0.9, 1.1)
    for bone, axis, wave, amp, freq, phase in chs:
        a = amp * rng.uniform(0.85, 1.15)
        w = _wave(wave, phi, freq * tempo, phase + rng.normal(0.0, 0.25))
        if bone == ROOT:
            root[:, _ROOT_AXIS[axis]] += a * w
        else:
            angles[:, bone, _AXIS[axis]] += a * w
    # Posture noise: a slow random sway on every joint, so no two performances are identical.
    sway = rng.normal(0.0, 0.04, (NUM_JOINTS, 3)) * np.sin(
        2 * np.pi * rng.uniform(0.3, 1.2, (NUM_JOINTS, 3)) * phi[:, None, None]
        + rng.uniform(0, 2 * np.pi, (NUM_JOINTS, 3))
    )
    angles += sway
    local = _rot(2, angles[..., 2]) @ _rot(0, angles[..., 0]) @ _rot(1, angles[..., 1])
    glob = np.empty((t, NUM_JOINTS, 3, 3))
    pos = np.empty((t, NUM_JOINTS, 3))
    glob[:, 0] = np.eye(3)
    pos[:, 0] = 0.0
    for j in _ORDER[1:]:
        p = _PARENT[j]
        glob[:, j] = glob[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + glob[:, j] @ _OFFSETS[j]
    return pos, glob, root


def _quaternions(m: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z) of rotation matrices (..., 3, 3), branch-free per element."""
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    w = np.sqrt(np.maximum(0.0, 1 + tr)) / 2
    x = np.sqrt(np.maximum(0.0, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2])) / 2
    y = np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2])) / 2
    z = np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.copysign(x, m[..., 2, 1] - m[..., 1, 2])
    y = np.copysign(y, m[..., 0, 2] - m[..., 2, 0])
    z = np.copysign(z, m[..., 1, 0] - m[..., 0, 1])
    return np.stack([w, x, y, z], axis=-1)


# ----------------------------------------------------------------------------------------------
# Scene: subject, camera, setup

#: Kinect v2 intrinsics (approximate): depth 512 x 424, colour 1920 x 1080, colour camera 5 cm off.
DEPTH_F, DEPTH_CX, DEPTH_CY = 365.5, 256.0, 212.0
COLOR_F, COLOR_CX, COLOR_CY, COLOR_BASELINE = 1063.0, 960.0, 540.0, 0.052
CAMERA_YAW_DEG = {1: -45.0, 2: 0.0, 3: 45.0}
_BODY_ID_BASE = 72057594037927936  # 2**56: real NTU body IDs are this plus a small counter


def subject_scale(subject: int) -> float:
    """Body size of a subject (fixed per subject id, like a real person): 0.88 .. 1.12."""
    return float(np.random.default_rng([0x5B1EC7, subject]).uniform(0.88, 1.12))


def setup_geometry(setup: int) -> tuple[float, float, float]:
    """(distance in m, spine-base height relative to the camera in m, camera tilt in rad)."""
    rng = np.random.default_rng([0x5E7AB, setup])
    return (
        float(rng.uniform(2.4, 3.4)),
        float(rng.uniform(-0.35, -0.05)),
        float(np.deg2rad(rng.uniform(-8.0, 3.0))),
    )


@dataclass
class _Body:
    """One tracked body of a sample: what the file lists for it, frame by frame."""

    xyz: np.ndarray  # (T, V, 3) camera space, metres
    quat: np.ndarray  # (T, V, 4)
    state: np.ndarray  # (T, V) joint tracking state (2 tracked, 1 inferred)
    present: np.ndarray  # (T,) bool
    ids: np.ndarray  # (T,) int64 body id
    fields: np.ndarray  # (T, 9) body-line fields after the id


def _person(
    chs: Sequence[Channel],
    phi: np.ndarray,
    rng: np.random.Generator,
    *,
    scale: float,
    face: float,
    scene_rot: np.ndarray,
    offset: np.ndarray,
    noise: float,
) -> _Body:
    t = len(phi)
    pos, glob, root = _pose(chs, phi, rng)
    yaw = _rot(1, face + root[:, 3])  # (T, 3, 3)
    local = (pos * scale) @ yaw.transpose(0, 2, 1) + root[:, None, :3] * scale
    xyz = (local + offset[:, None, :]) @ scene_rot.T
    orient = (scene_rot @ yaw)[:, None] @ glob
    quat = _quaternions(orient) + rng.normal(0.0, 0.01, (t, NUM_JOINTS, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    quat[:, list(LEAF_JOINTS)] = 0.0
    state = np.full((t, NUM_JOINTS), 2.0)
    # Occlusions: a hand or a foot is "inferred" (state 1) for a few frames, with more noise.
    for _ in range(rng.integers(0, 3)):
        chain = ((7, 21, 22), (11, 23, 24), (14, 15), (18, 19))[rng.integers(0, 4)]
        start = int(rng.integers(0, max(1, t - 3)))
        stop = min(t, start + int(rng.integers(3, 11)))
        state[start:stop, list(chain)] = 1.0
    xyz = xyz + rng.normal(0.0, noise, xyz.shape) * np.where(state == 1.0, 5.0, 1.0)[..., None]
    fields = np.zeros((t, 9))
    hands = rng.integers(0, 2, 2), rng.integers(0, 4, 2)
    fields[:, 1], fields[:, 2] = hands[0][0], hands[1][0]  # left hand confidence, state
    fields[:, 3], fields[:, 4] = hands[0][1], hands[1][1]  # right hand confidence, state
    flips = rng.random(t) < 0.05
    fields[flips, 2] = rng.integers(0, 4, int(flips.sum()))
    # Lean follows the spine bend, as the Kinect's does.
    fields[:, 6] = np.clip(np.sin(-glob[:, 1, 0, 1]) + rng.normal(0, 0.02, t), -1, 1)  # leanX
    fields[:, 7] = np.clip(np.sin(glob[:, 1, 2, 1]) + rng.normal(0, 0.02, t), -1, 1)  # leanY
    fields[:, 8] = 2.0
    ids = np.full(t, _BODY_ID_BASE + int(rng.integers(10_000, 130_000)), dtype=np.int64)
    return _Body(xyz, quat, state, np.ones(t, bool), ids, fields)


def _clutter(t: int, rng: np.random.Generator, noise: float) -> _Body:
    """A short-lived false body (furniture, a reflection): compact, jittery, a few frames long."""
    centre = np.array([rng.uniform(-1.2, 1.2), rng.uniform(-0.6, 0.3), rng.uniform(2.6, 4.2)])
    rest = np.asarray(REST_POSE) * rng.uniform(0.1, 0.25)
    xyz = centre + rest + rng.normal(0.0, noise * 3, (t, NUM_JOINTS, 3))
    quat = rng.normal(0.0, 1.0, (t, NUM_JOINTS, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    quat[:, list(LEAF_JOINTS)] = 0.0
    present = np.zeros(t, bool)
    start = int(rng.integers(0, max(1, t - 2)))
    present[start : start + int(rng.integers(2, 9))] = True
    fields = np.zeros((t, 9))
    fields[:, 6:8] = rng.normal(0.0, 0.3, (t, 2)).clip(-1, 1)
    fields[:, 8] = 2.0
    state = rng.choice([1.0, 2.0], (t, NUM_JOINTS), p=[0.4, 0.6])
    ids = np.full(t, _BODY_ID_BASE + int(rng.integers(10_000, 130_000)), dtype=np.int64)
    return _Body(xyz, quat, state, present, ids, fields)


def generate_sample(
    spec: SampleSpec,
    num_classes: int,
    seed: int,
    frames: tuple[int, int] = (40, 100),
    noise: float = 0.004,
) -> list[_Body]:
    """All bodies of one sample, in the order the file lists them."""
    rng = np.random.default_rng([seed, spec.action, spec.index, 0xB0D1E5])
    t = int(rng.integers(frames[0], frames[1] + 1))
    prog = class_program(spec.action, num_classes)
    u = np.linspace(0.0, 1.0, t)
    # Time warp: the performer starts a little late or early and speeds up or slows down.
    a0, a1 = rng.uniform(0.0, 0.1, 2)
    warp = rng.uniform(-0.5, 0.5)
    phi = np.clip((u - a0) / (1.0 - a0 - a1), 0.0, 1.0)
    phi = phi + warp * np.sin(np.pi * phi) * phi * (1 - phi)
    dist, height, tilt = setup_geometry(spec.setup)
    yaw = np.deg2rad(
        CAMERA_YAW_DEG[spec.camera] + (12.0 if spec.replication == 1 else -12.0) + rng.normal(0, 6)
    )
    scene_rot = _rot(0, np.float64(tilt)) @ _rot(1, np.float64(yaw))
    base = np.array([rng.uniform(-0.3, 0.3), height, dist + rng.uniform(-0.15, 0.15)])
    base_cam = np.linalg.solve(scene_rot, base)  # so that scene_rot @ (x + base_cam) = ... + base
    scale = subject_scale(spec.subject)
    kw = {"scene_rot": scene_rot, "noise": noise}
    if not prog.two_person:
        offset = np.broadcast_to(base_cam, (t, 3))
        bodies = [_person(prog.person_a, phi, rng, scale=scale, face=0.0, offset=offset, **kw)]
    else:
        d = rng.uniform(0.9, 1.3) + prog.pair_delta * _wave(prog.pair_wave, phi, 1.0, 0.0)
        half = np.stack([d / 2, np.zeros(t), np.zeros(t)], axis=1)
        scale_b = float(rng.uniform(0.88, 1.12))
        face = np.deg2rad(rng.uniform(50, 70))
        bodies = [
            _person(prog.person_a, phi, rng, scale=scale, face=-face, offset=base_cam - half, **kw),
            _person(
                prog.person_b, phi, rng, scale=scale_b, face=face, offset=base_cam + half, **kw
            ),
        ]
    # Awkward cases of real recordings.
    if rng.random() < 0.15:  # the tracker loses and re-acquires a person: a new body ID
        b = bodies[int(rng.integers(0, len(bodies)))]
        b.ids[int(rng.integers(t // 4, 3 * t // 4)) :] = _BODY_ID_BASE + int(
            rng.integers(10_000, 130_000)
        )
    if rng.random() < 0.3:
        bodies.append(_clutter(t, rng, noise))
        if rng.random() < 0.3:
            bodies.append(_clutter(t, rng, noise))
    empty = np.zeros(t, bool)
    if rng.random() < 0.35:  # nobody tracked yet at the start
        empty[: int(rng.integers(1, 5))] = True
    if rng.random() < 0.2:  # a tracking gap in the middle
        g = int(rng.integers(t // 4, 3 * t // 4))
        empty[g : g + int(rng.integers(1, 4))] = True
    for b in bodies:
        b.present &= ~empty
    return bodies


# ----------------------------------------------------------------------------------------------
# Formatting

_BODY_FMT = "%d %d %d %d %d %d %.7G %.7G %d\r\n25\r\n"
_JOINT_FMT = "%.7G %.7G %.7G %.6G %.6G %.6G %.6G %.7G %.7G %.7G %.7G %d\r\n"
_JOINTS_FMT = _JOINT_FMT * NUM_JOINTS
_BLOCK_WIDTH = 9 + NUM_JOINTS * 12


def format_skeleton(bodies: Sequence[_Body]) -> str:
    """The ``.skeleton`` text of a sample, built with one ``%`` format for the whole file.

    Numbers use 7 significant digits (%G), as the Kinect SDK's float printing does, which also
    yields upper-case scientific notation for tiny values (``-7.257856E-05``).
    """
    t = len(bodies[0].present)
    present = np.stack([b.present for b in bodies])  # (B, T)
    counts = present.sum(0)
    frame_idx, body_idx = np.nonzero(present.T)  # blocks in file order: frame-major, body order
    n = len(frame_idx)
    block = np.empty((n, _BLOCK_WIDTH))
    joints = block[:, 9:].reshape(n, NUM_JOINTS, 12)
    for k, b in enumerate(bodies):
        sel = body_idx == k
        f = frame_idx[sel]
        block[sel, :9] = b.fields[f]
        xyz = b.xyz[f]
        joints[sel, :, 0:3] = xyz
        z = np.maximum(xyz[..., 2], 0.1)
        joints[sel, :, 3] = DEPTH_CX + DEPTH_F * xyz[..., 0] / z
        joints[sel, :, 4] = DEPTH_CY - DEPTH_F * xyz[..., 1] / z
        joints[sel, :, 5] = COLOR_CX + COLOR_F * (xyz[..., 0] + COLOR_BASELINE) / z
        joints[sel, :, 6] = COLOR_CY - COLOR_F * xyz[..., 1] / z
        joints[sel, :, 7:11] = b.quat[f]
        joints[sel, :, 11] = b.state[f]
    block += 0.0  # turns -0.0 into 0.0 so that no "-0" is printed
    ids = np.stack([b.ids for b in bodies])[body_idx, frame_idx]
    pieces = [f"{t}\r\n"]
    block_no = 0
    for fr in range(t):
        pieces.append(f"{counts[fr]}\r\n")
        for _ in range(counts[fr]):
            pieces.append(f"{ids[block_no]} {_BODY_FMT}{_JOINTS_FMT}")
            block_no += 1
    return "".join(pieces) % tuple(block.ravel().tolist())


# ----------------------------------------------------------------------------------------------
# Stage


@dataclass(frozen=True)
class SynthSettings:
    """What `skelact synth` generates."""

    out_dir: Path
    num_classes: int = 10
    samples_per_class: int = 30
    seed: int = 0
    frames_min: int = 40
    frames_max: int = 100
    noise: float = 0.004  # std of the Gaussian joint noise, metres
    workers: int = 1  # processes; 0 = all cores
    clean: bool = False  # delete other *.skeleton files already in out_dir


@dataclass
class SynthResult:
    """What was written, and how the samples fall into the benchmark splits."""

    out_dir: Path
    files_written: int
    bytes_written: int
    seconds: float
    num_classes: int
    two_person_actions: list[int]
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def files_per_s(self) -> float:
        return self.files_written / self.seconds if self.seconds > 0 else float("inf")


def _make_file(args: tuple[SampleSpec, SynthSettings]) -> int:
    spec, s = args
    bodies = generate_sample(spec, s.num_classes, s.seed, (s.frames_min, s.frames_max), s.noise)
    data = format_skeleton(bodies).encode("ascii")
    atomic_write_bytes(Path(s.out_dir) / f"{spec.name}.skeleton", data)
    return len(data)


def synthesize(
    settings: SynthSettings, progress: Callable[[int, int], None] | None = None
) -> SynthResult:
    """Write the synthetic data set; ``progress(done, total)`` is called after each file."""
    s = settings
    if not 2 <= s.frames_min <= s.frames_max:
        raise ValueError(f"need 2 <= frames_min <= frames_max, got {s.frames_min}, {s.frames_max}")
    if s.noise < 0:
        raise ValueError(f"noise must be >= 0, got {s.noise}")
    start = time.perf_counter()
    specs = plan_samples(s.num_classes, s.samples_per_class, s.seed)
    out = Path(s.out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    planned = {f"{p.name}.skeleton" for p in specs}
    stale = sorted(p for p in out.glob("*.skeleton") if p.name not in planned)
    if stale and not s.clean:
        raise FileExistsError(
            f"{out} already holds {len(stale)} other .skeleton files (e.g. {stale[0].name}) that "
            "would mix with the new data set; use another directory or clean=True (--clean)"
        )
    for p in stale:
        p.unlink()
    workers = s.workers or os.cpu_count() or 1
    jobs = [(p, s) for p in specs]
    total = 0
    if workers == 1:
        results = map(_make_file, jobs)
        for i, n in enumerate(results, 1):
            total += n
            if progress:
                progress(i, len(jobs))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for i, n in enumerate(pool.map(_make_file, jobs, chunksize=16), 1):
                total += n
                if progress:
                    progress(i, len(jobs))
    result = SynthResult(
        out_dir=out,
        files_written=len(specs),
        bytes_written=total,
        seconds=time.perf_counter() - start,
        num_classes=s.num_classes,
        two_person_actions=list(two_person_actions(s.num_classes)),
        split_counts=split_counts(specs),
    )
    manifest = {
        "settings": {
            k: v for k, v in asdict(s).items() if k not in ("out_dir", "workers", "clean")
        },
        "files_written": result.files_written,
        "two_person_actions": result.two_person_actions,
        "classes": {p: class_program(p, s.num_classes).name for p in range(1, s.num_classes + 1)},
        "split_counts": result.split_counts,
    }
    atomic_write_bytes(out / "synth.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return result
