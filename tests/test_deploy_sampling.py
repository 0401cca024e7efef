"""The NumPy val sampling (deploy path) equals the torch val sampler of the training code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from skelact.data import sampling
from skelact.data.dataset import SkeletonSet
from skelact.data.transforms import ClipSampler, interp_indices


@pytest.mark.parametrize("clip_len", [32, 64, 100])
def test_indices_and_weights_equal_the_torch_sampler(clip_len: int) -> None:
    lens = np.arange(1, 400)
    ours = sampling.interp_indices(lens, clip_len)
    theirs = interp_indices(torch.from_numpy(lens), clip_len)
    for a, b in zip(ours, theirs, strict=True):
        assert np.array_equal(a, b.numpy())
    for ratio in (0.5, 0.9, 0.95, 1.0):
        draws = ClipSampler(clip_len, train=False, clip_ratio=ratio).draw(lens)
        starts, crop = sampling.center_crop(lens, ratio)
        assert np.array_equal(starts, draws.starts) and np.array_equal(crop, draws.lens)


@pytest.mark.parametrize(("clip_len", "ratio"), [(32, 0.9), (64, 0.95), (64, 1.0), (100, 0.9)])
def test_val_clip_equals_the_torch_val_transform(
    reference_dir: Path, clip_len: int, ratio: float
) -> None:
    with open(reference_dir / "ntu_prep" / "expected" / "xsub" / "val.pkl", "rb") as f:
        anns = pickle.load(f)  # real pre-normalised samples of 40-137 frames
    data = SkeletonSet.from_annotations(anns, source="val.pkl")
    batch = ClipSampler(clip_len, train=False, clip_ratio=ratio)(data, np.arange(len(anns)))
    for k, ann in enumerate(anns):
        ours = sampling.val_clip(ann["keypoint"], clip_len, ratio)
        # bit-equal where torch fuses the blend's multiply-add (x86 AVX2/AVX-512, ARM); within
        # one float32 ulp where it does not
        np.testing.assert_array_max_ulp(ours, batch[k].numpy(), maxulp=1)
