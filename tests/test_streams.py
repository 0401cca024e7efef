"""Bone and motion streams against a transcription of the public definitions.

The reference side is written independently of ``skelact.data.streams``: per sample in PYSKL's
``M x T x V x C`` order, one joint or frame at a time, as PYSKL's ``JointToBone`` / ``ToMotion``
(score channel: the mean of the two joints' or frames' scores) and CTR-GCN's feeder
(``vel``: frame t+1 minus frame t, the last frame zero) define them. Every built-in layout, 2-D
and 3-D, with and without the score channel; NTU's reference samples for ntu25.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import load_pickle
from skelact.data.dataset import SkeletonSet
from skelact.data.streams import STREAMS, stream_features
from skelact.data.transforms import ClipSampler
from skelact.layouts import BUILTIN_LAYOUTS, get_layout

#: PYSKL's ``JointToBone`` pairs for 'nturgb+d' (child, parent), 0-based: the same bones as
#: CTR-GCN's ``ntu_pairs``; the spine centre (20) is its own parent, so its bone is zero.
PYSKL_NTU_PAIRS = (
    (0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8),
    (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17),
    (19, 18), (21, 22), (20, 20), (22, 7), (23, 24), (24, 11),
)  # fmt: skip


def reference_bone(kp: np.ndarray, pairs, dims: int) -> np.ndarray:
    """PYSKL's JointToBone on one (M, T, V, C) sample, joint by joint."""
    bone = np.zeros_like(kp)
    for v1, v2 in pairs:
        bone[..., v1, :dims] = kp[..., v1, :dims] - kp[..., v2, :dims]
        if kp.shape[-1] > dims:
            bone[..., v1, dims:] = (kp[..., v1, dims:] + kp[..., v2, dims:]) / 2
    return bone


def reference_motion(kp: np.ndarray, dims: int) -> np.ndarray:
    """CTR-GCN's ``vel`` / PYSKL's ToMotion on one (M, T, V, C) sample, frame by frame."""
    motion = np.zeros_like(kp)
    for t in range(kp.shape[1] - 1):
        motion[:, t, :, :dims] = kp[:, t + 1, :, :dims] - kp[:, t, :, :dims]
        if kp.shape[-1] > dims:
            motion[:, t, :, dims:] = (kp[:, t + 1, :, dims:] + kp[:, t, :, dims:]) / 2
    return motion


def reference_stream(kp: np.ndarray, stream: str, pairs, dims: int) -> np.ndarray:
    out = kp
    if stream in ("bone", "bone_motion"):
        out = reference_bone(out, pairs, dims)
    if stream in ("joint_motion", "bone_motion"):
        out = reference_motion(out, dims)
    return out


def layout_pairs(name: str) -> list[tuple[int, int]]:
    layout = get_layout(name)
    return [*layout.bones, (layout.center, layout.center)]


def ours(samples: np.ndarray, stream: str, name: str, dims: int) -> np.ndarray:
    """skelact's stream of (N, M, T, V, C) samples, through the model layout N x C x T x V x M."""
    x = torch.from_numpy(np.ascontiguousarray(samples.transpose(0, 4, 2, 3, 1)))
    y = stream_features(x, stream, get_layout(name).parents, dims)
    return y.numpy().transpose(0, 4, 2, 3, 1)


def test_ntu25_bones_are_pyskl_and_ctrgcn_pairs():
    layout = get_layout("ntu25")
    assert sorted(enumerate(layout.parents)) == sorted(PYSKL_NTU_PAIRS)


@pytest.mark.parametrize("stream", STREAMS)
def test_ntu_reference_samples(reference_dir, stream):
    samples = load_pickle(reference_dir / "ntu_prep" / "expected" / "xsub" / "val.pkl")[:6]
    for sample in samples:
        kp = sample["keypoint"].astype(np.float32)  # M x T x V x 3, pre-normalised
        expected = reference_stream(kp, stream, PYSKL_NTU_PAIRS, 3)
        got = ours(kp[None], stream, "ntu25", 3)[0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        if stream == "bone":
            assert np.all(got[:, :, 20] == 0), "the spine centre's bone is zero"
        if stream.endswith("motion"):
            assert np.all(got[:, -1] == 0), "the last motion frame is zero"


@pytest.mark.parametrize("name", BUILTIN_LAYOUTS)
@pytest.mark.parametrize(("dims", "score"), [(2, False), (2, True), (3, False), (3, True)])
@pytest.mark.parametrize("stream", STREAMS)
def test_every_layout_2d_3d_with_and_without_score(name, dims, score, stream):
    rng = np.random.default_rng(7)
    v = get_layout(name).num_joints
    kp = rng.standard_normal((3, 2, 9, v, dims + score)).astype(np.float32)
    if score:
        kp[..., -1] = rng.uniform(0, 1, kp.shape[:-1])
    got = ours(kp, stream, name, dims)
    for n in range(kp.shape[0]):
        expected = reference_stream(kp[n], stream, layout_pairs(name), dims)
        np.testing.assert_allclose(got[n], expected, rtol=0, atol=1e-6)
    if score and stream != "joint":
        assert got[..., :-1, :, -1].min() >= 0, "scores stay scores (means), not differences"


def test_joint_stream_is_the_input_itself():
    x = torch.randn(2, 3, 8, 25, 2)
    assert stream_features(x, "joint", get_layout("ntu25").parents, 3) is x


def test_unknown_stream_and_bad_shapes_are_errors():
    x = torch.randn(2, 3, 8, 25, 2)
    parents = get_layout("ntu25").parents
    with pytest.raises(ValueError, match="unknown stream 'bones'"):
        stream_features(x, "bones", parents, 3)
    with pytest.raises(ValueError, match="17 parents for V = 25"):
        stream_features(x, "bone", get_layout("coco17").parents, 3)
    with pytest.raises(ValueError, match="N x C x T x V x M"):
        stream_features(x[0], "bone", parents, 3)
    with pytest.raises(ValueError, match="needs the layout's parents"):
        ClipSampler(16, train=False, stream="bone")


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("stream", STREAMS[1:])
def test_sampler_takes_the_stream_of_the_sampled_clip(reference_dir, train, stream):
    """The data path: crop, resize (and rotate) the joints, then the stream of that clip."""
    data = SkeletonSet.from_file(reference_dir / "ntu_prep" / "expected" / "xsub" / "val.pkl")
    parents = get_layout("ntu25").parents
    options = {"train": train, "rotate": 0.1 if train else 0.0, "min_len": 16}
    joints = ClipSampler(24, **options)
    streamed = ClipSampler(24, **options, stream=stream, parents=parents)
    idx = np.arange(len(data))
    draws = joints.draw(data.lengths, np.random.default_rng(3))
    clip = joints.apply(data, idx, draws)
    got = streamed.apply(data, idx, draws)
    assert got.shape == clip.shape
    expected = np.stack([
        reference_stream(c.numpy().transpose(3, 1, 2, 0), stream, PYSKL_NTU_PAIRS, 3)
        for c in clip
    ]).transpose(0, 4, 2, 3, 1)  # fmt: skip
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-5)
