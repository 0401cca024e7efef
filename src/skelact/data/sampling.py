"""The val sampling rule (centre crop, then linear resize along time), in plain NumPy.

Why a NumPy module of its own: a deployed predictor (ONNX Runtime, no torch) must feed a model
exactly the clips it was validated on, and keeping two copies of the rule in step is how
train/serve skew starts. This module is the rule; the batched torch sampler in
:mod:`skelact.data.transforms` computes the same crop (`center_crop`) and the same
``F.interpolate(..., mode='bilinear', align_corners=False)`` neighbour/weight arithmetic
(`interp_indices`, float32 like PyTorch), and ``tests/test_deploy_sampling.py`` proves the two
paths equal on real samples.
"""

from __future__ import annotations

import numpy as np

__all__ = ["center_crop", "interp_indices", "val_clip"]


def center_crop(lengths: np.ndarray, clip_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and length (int64) of the centre crop of ``int(n * clip_ratio)`` frames (>= 1)."""
    n = np.asarray(lengths, dtype=np.int64)
    lens = np.maximum((n * float(clip_ratio)).astype(np.int64), 1)
    return (n - lens) // 2, lens


def interp_indices(lens: np.ndarray, clip_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left/right source frame within the crop and the right weight, ``(N, clip_len)`` each.

    PyTorch's bilinear ``align_corners=False`` arithmetic in float32: scale = L / T,
    src = max(scale * (t + 0.5) - 0.5, 0), i0 = min(floor(src), L - 1), i1 = i0 + (i0 < L - 1),
    lambda = clip(src - i0, 0, 1). For L == T this is the identity.
    """
    lens = np.asarray(lens, dtype=np.int64).reshape(-1)
    scale = (lens.astype(np.float32) / np.float32(clip_len))[:, None]
    t = np.arange(clip_len, dtype=np.float32)[None, :] + np.float32(0.5)
    src = np.maximum(scale * t - np.float32(0.5), np.float32(0.0))
    last = (lens - 1)[:, None]
    i0 = np.minimum(np.floor(src).astype(np.int64), last)
    lam = np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0))
    i1 = i0 + (i0 < last)
    return i0, i1, lam.astype(np.float32)


def val_clip(keypoint: np.ndarray, clip_len: int, clip_ratio: float) -> np.ndarray:
    """One pre-normalised ``(M, T, V, C)`` sample -> the model input ``(C, clip_len, V, M)``.

    Centre crop, then ``x0 * (1 - lambda) + x1 * lambda`` between the two neighbouring frames,
    with the torch sampler's rounding: ``x0 * (1 - lambda)`` rounded to float32, then
    ``addcmul`` adds ``x1 * lambda`` as one fused multiply-add (single rounding). In float64 the
    product of two float32 values is exact, so adding there and rounding once reproduces the
    fused result (bit for bit on the reference samples).
    """
    kp = np.asarray(keypoint, dtype=np.float32)
    if kp.ndim != 4 or kp.shape[1] < 1:
        raise ValueError(f"expected a (M, T, V, C) sample with T >= 1, got shape {kp.shape}")
    start, length = center_crop(np.array([kp.shape[1]]), clip_ratio)
    i0, i1, lam = interp_indices(length, clip_len)
    s = int(start[0])
    frames = kp.transpose(1, 2, 0, 3)  # (T, V, M, C), the torch sampler's row layout
    w = lam[0][:, None, None, None]
    left = (frames[s + i0[0]] * (np.float32(1.0) - w)).astype(np.float64)
    out = (left + frames[s + i1[0]].astype(np.float64) * w.astype(np.float64)).astype(np.float32)
    return np.ascontiguousarray(out.transpose(3, 0, 1, 2))  # (C, T, V, M)
