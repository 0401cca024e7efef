"""Body selection and pre-normalisation against a slow, frame-by-frame oracle on edge cases.

The reference vectors cover real files; these cases pin the corners they may miss: bodies that
appear late or vanish, gaps, a single-frame body (zero std), an all-empty sample, > 300 frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from skelact.data.prenorm import motion_energy, normalise_bodies, pre_normalise, select_bodies


def oracle_energy(body: np.ndarray) -> float:
    frames = [f for f in body if f.sum() != 0]
    if not frames:
        return 0.0
    s = np.stack(frames)
    return float(sum(s[:, :, c].std() for c in range(3)))


def _rotation(v: np.ndarray, target: np.ndarray) -> np.ndarray:
    if np.abs(v).sum() < 1e-6:
        return np.eye(3)
    cosang = np.clip(np.dot(v / np.linalg.norm(v), target), -1.0, 1.0)
    angle = np.arccos(cosang)
    axis = np.cross(v.astype(np.float64), target)
    if np.abs(axis).sum() < 1e-6 or abs(angle) < 1e-6:
        return np.eye(3)
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def oracle_prenorm(x: np.ndarray) -> np.ndarray:
    """Frame-by-frame statement of the reference semantics (M, T, V, C)."""
    s = x.astype(np.float32).copy()
    num_frames = s.shape[1]
    for person in s:
        if person.sum() == 0:
            continue
        if person[0].sum() == 0:
            kept = [f.copy() for f in person if f.sum() != 0]
            person[:] = 0
            for i, f in enumerate(kept):
                person[i] = f
        for t in range(num_frames):
            if person[t].sum() == 0 and person[t:].sum() == 0:
                for u in range(t, num_frames):
                    person[u] = person[(u - t) % t]
                break
    if s.sum() == 0:
        return s
    center = s[0, :, 1].copy()
    for person in s:
        if person.sum() == 0:
            continue
        for t in range(num_frames):
            for j in range(25):
                if person[t, j].sum() != 0:
                    person[t, j] = person[t, j] - center[t]
                else:
                    person[t, j] = 0
    for a, b, target in ((1, 0, [0.0, 0.0, 1.0]), (8, 4, [1.0, 0.0, 0.0])):
        rot = _rotation(s[0, 0, a] - s[0, 0, b], np.array(target))
        for person in s:
            if person.sum() == 0:
                continue
            for t in range(num_frames):
                if person[t].sum() != 0:
                    for j in range(25):
                        person[t, j] = rot @ person[t, j].astype(np.float64)
    return s


def _bodies(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """4 Kinect slots with awkward presence patterns."""
    base = rng.normal(size=(4, 1, 25, 3)) + np.array([0.0, 0.0, 3.0])
    motion = np.cumsum(rng.normal(scale=0.02, size=(4, num_frames, 25, 3)), axis=1)
    scale = np.array([1.0, 2.0, 0.5, 0.1])[:, None, None, None]
    out = base + motion * scale
    present = np.ones((4, num_frames), dtype=bool)
    present[0, :5] = False  # appears late
    present[0, num_frames // 2 : num_frames // 2 + 3] = False  # gap
    present[1, -num_frames // 3 :] = False  # leaves early
    present[2, :] = False
    present[2, 7] = True  # one frame only: zero std along time, but not zero energy
    present[3, :] = False  # never there
    return np.where(present[..., None, None], out, 0.0)


@pytest.mark.parametrize("num_frames", [40, 331])
def test_matches_oracle(num_frames: int) -> None:
    rng = np.random.default_rng(num_frames)
    bodies = _bodies(rng, num_frames)
    energy = motion_energy(bodies)
    np.testing.assert_allclose(energy, [oracle_energy(b) for b in bodies], rtol=1e-12)
    order = np.argsort([oracle_energy(b) for b in bodies])[::-1][:2]
    np.testing.assert_array_equal(select_bodies(bodies), bodies[order].astype(np.float32))
    got = normalise_bodies(bodies)
    want = oracle_prenorm(bodies[order])
    assert got.shape == (2, num_frames, 25, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the last rotation puts body 0's right->left shoulder bone of frame 0 along +x
    # (it undoes part of the first one, which aligned the spine with z: the reference does so too)
    bone = got[0, 0, 8] - got[0, 0, 4]
    np.testing.assert_allclose(bone[1:], 0, atol=1e-5)
    assert bone[0] > 0


def test_empty_and_single_body_samples() -> None:
    empty = np.zeros((4, 10, 25, 3))
    assert not normalise_bodies(empty).any()
    assert normalise_bodies(empty).shape == (2, 10, 25, 3)
    rng = np.random.default_rng(3)
    one = np.zeros((4, 12, 25, 3))
    one[2] = rng.normal(size=(12, 25, 3))  # the only body is in slot 3
    out = normalise_bodies(one)
    assert out[0].any() and not out[1].any()
    np.testing.assert_allclose(out, oracle_prenorm(one[[2, 3]]), atol=1e-5)


def test_pre_normalise_does_not_modify_its_input() -> None:
    x = np.random.default_rng(4).normal(size=(2, 6, 25, 3)).astype(np.float32)
    before = x.copy()
    pre_normalise(x)
    np.testing.assert_array_equal(x, before)


def test_coordinate_sum_is_numpys_sum_bit_for_bit() -> None:
    """The missing-joint test (sum == 0) must see exactly NumPy's x + y + z, cancellations too."""
    from skelact.data.prenorm import coordinate_sum

    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        a = rng.normal(size=(4, 60, 25, 3)) * rng.choice([1e-8, 1.0, 1e8], size=(4, 60, 25, 1))
        a = a.astype(dtype)
        pick = rng.random((4, 60, 25))
        a[pick < 0.3, 2] = -(a[pick < 0.3, 0] + a[pick < 0.3, 1])  # (x + y) + z == 0
        a[(pick > 0.3) & (pick < 0.5), 1] = -a[(pick > 0.3) & (pick < 0.5), 0]
        a[pick > 0.9] = 0
        got, want = coordinate_sum(a), a.sum(-1)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert np.array_equal(got.sum(-1) != 0, want.sum(-1) != 0)
