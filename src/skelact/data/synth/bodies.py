"""The bodies of one sample: performers placed in the scene, tracker clutter and dropouts.

A sample's file lists bodies frame by frame. Performers follow their class program (see
`skelact.data.synth.motions`) scaled per subject (``Pxxx``), seen from a per-camera yaw
(``Cxxx``: -45/0/+45 degrees) at a per-setup distance, height and tilt (``Sxxx``), with a
per-sample time warp, style jitter and Gaussian noise. The awkward cases of real recordings are
added on top: short-lived false bodies, body-ID changes, empty frames and inferred joints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skelact.data.synth.kinematics import pose, quaternions, rotation, wave_shape
from skelact.data.synth.motions import Channel, class_program
from skelact.data.synth.plan import SampleSpec
from skelact.data.synth.rest_pose import LEAF_JOINTS, NUM_JOINTS, REST_POSE, joint_index

SPINE_MID = joint_index("spine_mid")

#: Joint chains that a performer's own body may hide from the sensor (hands and feet), which
#: the Kinect then reports as "inferred" (state 1) and noisier.
_OCCLUDABLE: tuple[list[int], ...] = tuple(
    [joint_index(name) for name in chain]
    for chain in (
        ("left_hand", "left_hand_tip", "left_thumb"),
        ("right_hand", "right_hand_tip", "right_thumb"),
        ("left_ankle", "left_foot"),
        ("right_ankle", "right_foot"),
    )
)
_LEAVES = list(LEAF_JOINTS)

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
class Body:
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
) -> Body:
    t = len(phi)
    pos, glob, root = pose(chs, phi, rng)
    yaw = rotation(1, face + root[:, 3])  # (T, 3, 3)
    local = (pos * scale) @ yaw.transpose(0, 2, 1) + root[:, None, :3] * scale
    xyz = (local + offset[:, None, :]) @ scene_rot.T
    orient = (scene_rot @ yaw)[:, None] @ glob
    quat = quaternions(orient) + rng.normal(0.0, 0.01, (t, NUM_JOINTS, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    quat[:, _LEAVES] = 0.0
    state = np.full((t, NUM_JOINTS), 2.0)
    # Occlusions: a hand or a foot is "inferred" (state 1) for a few frames, with more noise.
    for _ in range(rng.integers(0, 3)):
        chain = _OCCLUDABLE[rng.integers(0, len(_OCCLUDABLE))]
        start = int(rng.integers(0, max(1, t - 3)))
        stop = min(t, start + int(rng.integers(3, 11)))
        state[start:stop, chain] = 1.0
    xyz = xyz + rng.normal(0.0, noise, xyz.shape) * np.where(state == 1.0, 5.0, 1.0)[..., None]
    fields = np.zeros((t, 9))
    hands = rng.integers(0, 2, 2), rng.integers(0, 4, 2)
    fields[:, 1], fields[:, 2] = hands[0][0], hands[1][0]  # left hand confidence, state
    fields[:, 3], fields[:, 4] = hands[0][1], hands[1][1]  # right hand confidence, state
    flips = rng.random(t) < 0.05
    fields[flips, 2] = rng.integers(0, 4, int(flips.sum()))
    # Lean follows the spine bend, as the Kinect's does.
    spine = glob[:, SPINE_MID]
    fields[:, 6] = np.clip(np.sin(-spine[:, 0, 1]) + rng.normal(0, 0.02, t), -1, 1)  # leanX
    fields[:, 7] = np.clip(np.sin(spine[:, 2, 1]) + rng.normal(0, 0.02, t), -1, 1)  # leanY
    fields[:, 8] = 2.0
    ids = np.full(t, _BODY_ID_BASE + int(rng.integers(10_000, 130_000)), dtype=np.int64)
    return Body(xyz, quat, state, np.ones(t, bool), ids, fields)


def _clutter(t: int, rng: np.random.Generator, noise: float) -> Body:
    """A short-lived false body (furniture, a reflection): compact, jittery, a few frames long."""
    centre = np.array([rng.uniform(-1.2, 1.2), rng.uniform(-0.6, 0.3), rng.uniform(2.6, 4.2)])
    rest = np.asarray(REST_POSE) * rng.uniform(0.1, 0.25)
    xyz = centre + rest + rng.normal(0.0, noise * 3, (t, NUM_JOINTS, 3))
    quat = rng.normal(0.0, 1.0, (t, NUM_JOINTS, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    quat[:, _LEAVES] = 0.0
    present = np.zeros(t, bool)
    start = int(rng.integers(0, max(1, t - 2)))
    present[start : start + int(rng.integers(2, 9))] = True
    fields = np.zeros((t, 9))
    fields[:, 6:8] = rng.normal(0.0, 0.3, (t, 2)).clip(-1, 1)
    fields[:, 8] = 2.0
    state = rng.choice([1.0, 2.0], (t, NUM_JOINTS), p=[0.4, 0.6])
    ids = np.full(t, _BODY_ID_BASE + int(rng.integers(10_000, 130_000)), dtype=np.int64)
    return Body(xyz, quat, state, present, ids, fields)


def generate_sample(
    spec: SampleSpec,
    num_classes: int,
    seed: int,
    frames: tuple[int, int] = (40, 100),
    noise: float = 0.004,
) -> list[Body]:
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
    scene_rot = rotation(0, np.float64(tilt)) @ rotation(1, np.float64(yaw))
    base = np.array([rng.uniform(-0.3, 0.3), height, dist + rng.uniform(-0.15, 0.15)])
    base_cam = np.linalg.solve(scene_rot, base)  # so that scene_rot @ (x + base_cam) = ... + base
    scale = subject_scale(spec.subject)
    kw = {"scene_rot": scene_rot, "noise": noise}
    if not prog.two_person:
        offset = np.broadcast_to(base_cam, (t, 3))
        bodies = [_person(prog.person_a, phi, rng, scale=scale, face=0.0, offset=offset, **kw)]
    else:
        d = rng.uniform(0.9, 1.3) + prog.pair_delta * wave_shape(prog.pair_wave, phi, 1.0, 0.0)
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
