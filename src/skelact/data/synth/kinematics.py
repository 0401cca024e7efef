"""Forward kinematics: a motion program -> joint positions and bone orientations over time.

The skeleton tree is the ``ntu25`` layout's bones re-rooted at the spine base, posed from
`rest_pose.REST_POSE`. Channels name the joint at the end of the bone they rotate (see
`skelact.data.synth.motions`); the names become indices here, once per channel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skelact.data.synth.motions import ROOT, Channel
from skelact.data.synth.rest_pose import NUM_JOINTS, REST_POSE, joint_index
from skelact.layouts import NTU25

INWARD_BONES = NTU25.bones
SPINE_BASE = joint_index("spine_base")


def _fk_tree() -> tuple[np.ndarray, list[int], np.ndarray]:
    """Parents with spine base as root (the layout's bones point to the neck), order, offsets."""
    adj: dict[int, list[int]] = {j: [] for j in range(NUM_JOINTS)}
    for a, b in INWARD_BONES:
        adj[a].append(b)
        adj[b].append(a)
    parent = np.full(NUM_JOINTS, -1)
    order = [SPINE_BASE]
    seen = {SPINE_BASE}
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


def wave_shape(kind: str, phi: np.ndarray, freq: float, phase: float) -> np.ndarray:
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


def rotation(axis: int, angle: np.ndarray) -> np.ndarray:
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


def pose(
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
    for joint, axis, wave, amp, freq, phase in chs:
        a = amp * rng.uniform(0.85, 1.15)
        w = wave_shape(wave, phi, freq * tempo, phase + rng.normal(0.0, 0.25))
        if joint == ROOT:
            root[:, _ROOT_AXIS[axis]] += a * w
        else:
            angles[:, joint_index(joint), _AXIS[axis]] += a * w
    # Posture noise: a slow random sway on every joint, so no two performances are identical.
    sway = rng.normal(0.0, 0.04, (NUM_JOINTS, 3)) * np.sin(
        2 * np.pi * rng.uniform(0.3, 1.2, (NUM_JOINTS, 3)) * phi[:, None, None]
        + rng.uniform(0, 2 * np.pi, (NUM_JOINTS, 3))
    )
    angles += sway
    local = rotation(2, angles[..., 2]) @ rotation(0, angles[..., 0]) @ rotation(1, angles[..., 1])
    glob = np.empty((t, NUM_JOINTS, 3, 3))
    pos = np.empty((t, NUM_JOINTS, 3))
    glob[:, SPINE_BASE] = np.eye(3)
    pos[:, SPINE_BASE] = 0.0
    for j in _ORDER[1:]:
        p = _PARENT[j]
        glob[:, j] = glob[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + glob[:, j] @ _OFFSETS[j]
    return pos, glob, root


def quaternions(m: np.ndarray) -> np.ndarray:
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
