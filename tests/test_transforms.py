"""Reference sampling/augmentation: per-sample NumPy version vs the reference's outputs, and the
batched ClipSampler vs the per-sample version for the same draws."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import cpu_and_cuda_batches
from reference_transforms import (
    center_crop,
    format_nctvm,
    random_crop_legacy,
    reference_case,
    resize_time,
    rotate,
    sample_clip,
)
from skelact.data.annotations import load_annotations
from skelact.data.dataset import SkeletonSet
from skelact.data.safe_pickle import safe_load
from skelact.data.transforms import ClipSampler, Draws, rotation_matrices
from skelact.layouts import NTU25

NUM_JOINTS = NTU25.num_joints


@pytest.fixture(scope="module")
def ragged() -> tuple[SkeletonSet, list[np.ndarray]]:
    """Variable-length synthetic set incl. sequences shorter than 32 and 64 and of 1-2 frames."""
    rng = np.random.default_rng(123)
    lengths = [1, 2, 17, 31, 32, 33, 50, 63, 64, 65, 100, 128, 150, 299, 300] + list(
        rng.integers(3, 300, 25)
    )
    kps = [(rng.normal(size=(2, n, NUM_JOINTS, 3)) * 0.5).astype(np.float32) for n in lengths]
    anns = [{"frame_dir": f"s{i}", "label": i % 5, "keypoint": kp} for i, kp in enumerate(kps)]
    return SkeletonSet.from_annotations(anns), kps


def _per_sample(kps: list[np.ndarray], idx: np.ndarray, draws: Draws, clip_len: int) -> np.ndarray:
    outs = []
    for j, i in enumerate(idx):
        angles = None if draws.angles is None else draws.angles[j]
        clip = sample_clip(kps[i], int(draws.starts[j]), int(draws.lens[j]), clip_len, angles)
        outs.append(format_nctvm(clip))
    return np.stack(outs)


# ------------------------------------------------------------------ per-sample vs reference


def test_reference_cases_reproduced(reference_dir: Path) -> None:
    cases = safe_load(reference_dir / "augment" / "cases.pkl")
    anns = load_annotations(reference_dir / "ntu_prep" / "expected" / "xsub" / "val.pkl")
    by_name = {a["frame_dir"]: a["keypoint"] for a in anns}
    assert len(cases) == 20
    kinds = {(c["kind"], c.get("rand_rotate", 0.0) > 0) for c in cases}
    assert kinds == {("val", False), ("train", False), ("train", True)}
    for case in cases:
        out = reference_case(by_name[case["frame_dir"]], case)
        assert out.shape == case["output"].shape and out.dtype == np.float32
        np.testing.assert_allclose(out, case["output"], rtol=0, atol=1e-6, err_msg=str(case))


def test_reference_cases_through_batched_sampler(reference_dir: Path) -> None:
    """The batched path, fed the legacy draws, reproduces the reference outputs too."""
    cases = safe_load(reference_dir / "augment" / "cases.pkl")
    ds = SkeletonSet.from_file(reference_dir / "ntu_prep" / "expected" / "xsub" / "val.pkl")
    index = {name: i for i, name in enumerate(ds.names)}
    for case in cases:
        i = np.array([index[case["frame_dir"]]])
        if case["kind"] == "val":
            sampler = ClipSampler(case["clip_len"], train=False, clip_ratio=case["clip_ratio"])
            draws = sampler.draw(ds.lengths[i])
        else:
            sampler = ClipSampler(case["clip_len"], train=True, rotate=case["rand_rotate"])
            np.random.seed(case["seed"])  # the reference seeds the global legacy generator
            draws = sampler.draw_legacy(ds.lengths[i])
        out = sampler.apply(ds, i, draws)[0].numpy()  # C T V M
        expected = case["output"].transpose(3, 1, 2, 0)  # M T V C -> C T V M
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6, err_msg=str(case))


def test_resize_matches_torch_interpolate() -> None:
    rng = np.random.default_rng(0)
    for length, clip_len in [(77, 32), (77, 64), (20, 64), (64, 64), (1, 32), (2, 64), (300, 64)]:
        x = rng.normal(size=(2, length, NUM_JOINTS, 3)).astype(np.float32)
        ref = F.interpolate(
            torch.from_numpy(x.transpose(0, 3, 1, 2)),
            size=(clip_len, NUM_JOINTS),
            mode="bilinear",
            align_corners=False,
        )
        ref = ref.permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(resize_time(x, clip_len), ref, rtol=1e-6, atol=1e-6)


def test_rotation_matrix_convention() -> None:
    a, b, c = 0.3, -0.2, 0.1
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    np.testing.assert_allclose(rotation_matrices(np.array([a, b, c]))[0], rz @ ry @ rx)
    kp = np.random.default_rng(1).normal(size=(2, 5, NUM_JOINTS, 3)).astype(np.float32)
    rotated = rotate(kp, np.array([a, b, c]))
    np.testing.assert_allclose(rotated[1, 2, 3], (rz @ ry @ rx) @ kp[1, 2, 3], rtol=1e-5)
    # rotations preserve distances to the origin
    np.testing.assert_allclose(
        np.linalg.norm(rotated, axis=-1), np.linalg.norm(kp, axis=-1), rtol=1e-5
    )


def test_crop_rules() -> None:
    assert center_crop(116, 0.9) == (6, 104)
    assert center_crop(40, 0.95) == (1, 38)
    assert center_crop(1, 0.9) == (0, 1)  # never an empty clip
    rs = np.random.RandomState(0)
    for n in [1, 10, 63, 64, 65, 127, 128, 300]:
        for _ in range(50):
            start, length = random_crop_legacy(n, rs)
            assert min(64, n) <= length <= n and 0 <= start <= n - length
            if n >= 128:
                assert length >= n // 2


# ------------------------------------------------------------------ batched == per-sample


@pytest.mark.parametrize("clip_len", [32, 64])
@pytest.mark.parametrize(("train", "rotate_strength"), [(False, 0.0), (True, 0.0), (True, 0.1)])
def test_batched_equals_per_sample(ragged, clip_len: int, train: bool, rotate_strength: float):
    ds, kps = ragged
    rng = np.random.default_rng(clip_len + int(train) + int(rotate_strength * 10))
    sampler = ClipSampler(clip_len, train=train, clip_ratio=0.95, rotate=rotate_strength)
    idx = rng.permutation(len(ds))  # whole ragged set, shuffled
    draws = sampler.draw(ds.lengths[idx], rng)
    assert (draws.angles is not None) == (train and rotate_strength > 0)
    out = sampler.apply(ds, idx, draws)
    assert out.shape == (len(idx), 3, clip_len, NUM_JOINTS, 2) and out.dtype == torch.float32
    assert out.is_contiguous()
    expected = _per_sample(kps, idx, draws, clip_len)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)
    # the torch-resident copy of the set gives the same batch
    np.testing.assert_array_equal(sampler.apply(ds.to("cpu"), idx, draws).numpy(), out.numpy())


def test_legacy_draws_equal_reference_stream(ragged) -> None:
    ds, kps = ragged
    sampler = ClipSampler(64, train=True, rotate=0.1)
    idx = np.arange(len(ds))
    draws = sampler.draw_legacy(ds.lengths[idx], np.random.RandomState(7))
    rs = np.random.RandomState(7)
    for j, n in enumerate(ds.lengths):
        start, length = random_crop_legacy(int(n), rs)
        angles = rs.uniform(-0.1 * math.pi, 0.1 * math.pi, 3)
        assert (draws.starts[j], draws.lens[j]) == (start, length)
        np.testing.assert_array_equal(draws.angles[j], angles)


def test_generator_draws_follow_the_rules(ragged) -> None:
    ds, _ = ragged
    sampler = ClipSampler(64, train=True, rotate=0.1)
    n = np.tile(ds.lengths, 50)
    draws = sampler.draw(n, np.random.default_rng(0))
    assert np.all(draws.lens <= n) and np.all(draws.lens >= np.minimum(64, n))
    assert np.all(draws.starts >= 0) and np.all(draws.starts + draws.lens <= n)
    long = n >= 128
    assert np.all(draws.lens[long] >= n[long] // 2)
    assert np.abs(draws.angles).max() <= 0.1 * math.pi
    # uniform over [int(0.5 n), n]: for n = 300 the lengths cover nearly the whole range
    lens300 = draws.lens[n == 300]
    assert lens300.min() < 170 and lens300.max() > 280
    # same seed, same draws; val ignores the rng entirely
    again = sampler.draw(n, np.random.default_rng(0))
    np.testing.assert_array_equal(again.lens, draws.lens)
    val = ClipSampler(64, train=False, clip_ratio=0.9).draw(ds.lengths)
    assert val.angles is None
    np.testing.assert_array_equal(val.lens, np.maximum((ds.lengths * 0.9).astype(int), 1))


def test_call_indices_and_errors(ragged) -> None:
    ds, kps = ragged
    sampler = ClipSampler(32, train=False, clip_ratio=0.9)
    idx = torch.tensor([3, 0, 12])
    out = sampler(ds, idx)
    expected = _per_sample(kps, idx.numpy(), sampler.draw(ds.lengths[idx.numpy()]), 32)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="needs an rng"):
        ClipSampler(32, train=True)(ds, [0])
    bad = Draws(starts=np.array([5]), lens=np.array([10]))
    with pytest.raises(ValueError, match="out of range"):
        sampler.apply(ds, [0], bad)  # sample 0 has 1 frame
    with pytest.raises(ValueError, match="clip_ratio"):
        ClipSampler(32, train=False, clip_ratio=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_on_cuda_equals_cpu(ragged) -> None:
    ds, _ = ragged
    cpu_and_cuda_batches(ds, 64, seed=3, train=True, rotate=0.1)
