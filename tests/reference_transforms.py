"""Per-sample NumPy versions of the reference sampling and augmentation (tests and benchmarks).

These follow the reference pipeline step by step on one M x T x V x C keypoint array, the way
SkelAct applies it inside a DataLoader worker: crop indices, bilinear resize along time, rotation
in float64 then cast to float32, and FormatGCNInput's M T V C -> C T V M transpose with persons
padded/truncated to 2. They exist to prove (against ../shared/reference/augment/cases.pkl) that
we understood the reference, and that the batched `skelact.data.transforms.ClipSampler` computes
the same thing for the same draws. Training never uses them: they are the slow path, so they
live beside the tests (imported as ``reference_transforms``) and are not installed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from skelact.data.transforms import rotation_matrices

__all__ = [
    "random_crop_legacy",
    "center_crop",
    "resize_time",
    "rotate",
    "format_nctvm",
    "sample_clip",
    "reference_case",
]


def random_crop_legacy(
    num_frames: int,
    random_state: Any = None,
    *,
    min_ratio: float = 0.5,
    max_ratio: float = 1.0,
    min_len: int = 64,
) -> tuple[int, int]:
    """(start, length) of the reference random crop, drawn from the legacy NumPy generator."""
    rs = np.random if random_state is None else random_state
    length = rs.randint(int(num_frames * min_ratio), int(num_frames * max_ratio) + 1)
    length = min(max(length, min_len), num_frames)
    start = rs.randint(0, num_frames - length + 1)
    return int(start), int(length)


def center_crop(num_frames: int, clip_ratio: float) -> tuple[int, int]:
    """(start, length) of the reference centre crop (length at least 1 frame)."""
    length = max(int(num_frames * clip_ratio), 1)
    return (num_frames - length) // 2, length


def resize_time(keypoint: np.ndarray, clip_len: int) -> np.ndarray:
    """Bilinear (align_corners=False) resize of M x L x V x C to M x clip_len x V x C.

    The joint axis keeps its size, so bilinear reduces to linear interpolation in time; the
    source index and weight are computed in float32 exactly like PyTorch's CPU kernel.
    """
    length = keypoint.shape[1]
    if length == clip_len:  # PyTorch's same-size shortcut: a plain copy
        return np.array(keypoint, dtype=np.float32)
    half = np.float32(0.5)
    scale = np.float32(length) / np.float32(clip_len)
    t = np.arange(clip_len, dtype=np.float32)
    src = np.maximum(scale * (t + half) - half, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), length - 1)
    lam1 = np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0))
    lam0 = np.float32(1.0) - lam1
    i1 = i0 + (i0 < length - 1)
    w0 = lam0[None, :, None, None]
    w1 = lam1[None, :, None, None]
    return (keypoint[:, i0] * w0 + keypoint[:, i1] * w1).astype(np.float32, copy=False)


def rotate(keypoint: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Apply R = Rz(a0) Ry(a1) Rx(a2) to every (x, y, z) of M x T x V x C, in float64 -> float32."""
    rot = rotation_matrices(np.asarray(angles, dtype=np.float64))[0]
    m, t, v, c = keypoint.shape
    points = keypoint.transpose(3, 1, 2, 0).reshape(c, -1)  # C x (T V M), like the reference
    rotated = (rot @ points).reshape(c, t, v, m).astype(np.float32)
    return rotated.transpose(3, 1, 2, 0)


def format_nctvm(keypoint: np.ndarray, num_person: int = 2) -> np.ndarray:
    """M x T x V x C -> C x T x V x M, zero-padding or truncating persons to ``num_person``."""
    out = np.transpose(keypoint, (3, 1, 2, 0))
    m = out.shape[-1]
    if m < num_person:
        pad = np.zeros(out.shape[:-1] + (num_person - m,), dtype=out.dtype)
        out = np.concatenate((out, pad), axis=-1)
    elif m > num_person:
        out = out[..., :num_person]
    return np.ascontiguousarray(out)


def sample_clip(
    keypoint: np.ndarray,
    start: int,
    length: int,
    clip_len: int,
    angles: np.ndarray | None = None,
) -> np.ndarray:
    """Crop frames start..start+length-1, resize to clip_len, rotate when ``angles`` is given.

    Returns M x clip_len x V x C float32 (the layout of the reference's ``results['keypoint']``).
    """
    clip = resize_time(keypoint[:, start : start + length], clip_len)
    if angles is not None:
        clip = rotate(clip, angles)
    return clip


def reference_case(keypoint: np.ndarray, case: dict) -> np.ndarray:
    """Reproduce one entry of ``augment/cases.pkl`` from the sample's keypoints.

    'val': centre crop by ``clip_ratio``; 'train': ``np.random.seed(seed)`` and the legacy
    generator's draws in the reference's order, rotation when ``rand_rotate`` > 0.
    """
    n = keypoint.shape[1]
    if case["kind"] == "val":
        start, length = center_crop(n, case["clip_ratio"])
        return sample_clip(keypoint, start, length, case["clip_len"])
    if case["kind"] != "train":
        raise ValueError(f"unknown case kind {case['kind']!r}")
    rs = np.random.RandomState(case["seed"])  # same stream as np.random.seed(seed)
    start, length = random_crop_legacy(n, rs)
    angles = None
    if case.get("rand_rotate", 0.0) > 0:
        theta = case["rand_rotate"] * math.pi
        angles = rs.uniform(-theta, theta, 3)
    return sample_clip(keypoint, start, length, case["clip_len"], angles)
