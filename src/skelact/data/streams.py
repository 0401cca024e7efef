"""Input streams: what a model sees of a clip -- its joints, bones, or their motion.

The field trains one model per stream and fuses their class scores (CTR-GCN, PYSKL, MMAction2
1.x). A stream is a pure function of the sampled clip ``x`` (N x C x T x V x M, C = ``dims``
coordinates plus the joint score when the data carries one):

* ``joint``: ``x`` itself;
* ``bone``: every joint minus its parent joint, by the layout's bone tree
  (:attr:`skelact.layouts.Layout.parents`); the centre joint is its own parent, so its bone is
  zero. For ``ntu25`` these are exactly the pairs PYSKL's ``JointToBone`` and CTR-GCN's
  ``ntu_pairs`` use;
* ``joint_motion``: frame t+1 minus frame t of the joints, the last frame zero (CTR-GCN's
  ``vel``, PYSKL's ``ToMotion``);
* ``bone_motion``: the same difference of the bones.

The score channel is not differenced: a bone's score is the mean of its two joints' scores and a
motion's score the mean of the two frames' scores (PYSKL's rule for 2-D keypoints with scores,
applied here to any ``dims``); the last motion frame is zero in every channel.

Why on the *sampled* clip, after crop, resize and rotation (as CTR-GCN's feeder does; PYSKL takes
motion before its temporal sampling): the stream is then a function of exactly the tensor the
model receives, so training on a CPU or from a GPU-resident set, evaluation, and an exported ONNX
graph (which computes it from joints itself) all apply the same few tensor operations to the same
input; and rotation commutes with it (a rotated bone is the bone of the rotated joints). Nothing
is stored: streams never become extra pickles.

This module imports no torch at import time (the settings schema reads :data:`STREAMS`); the
functions use the tensors' own operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["STREAMS", "BONE_STREAMS", "MOTION_STREAMS", "check_stream", "stream_features"]

#: Every stream, in the order reports and fusions list them.
STREAMS: tuple[str, ...] = ("joint", "bone", "joint_motion", "bone_motion")
BONE_STREAMS = ("bone", "bone_motion")
MOTION_STREAMS = ("joint_motion", "bone_motion")


def check_stream(stream: str) -> str:
    """``stream`` if it is one of :data:`STREAMS`, else a ValueError listing them."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; valid: {', '.join(STREAMS)}")
    return stream


def stream_features(x: Any, stream: str, parents: Sequence[int] | Any, dims: int) -> Any:
    """The ``stream`` of the joint clips ``x`` (a torch tensor N x C x T x V x M).

    ``parents``: the parent joint of every joint (a sequence, or an int64 tensor on ``x``'s
    device); ``dims``: the coordinate channels (2 or 3), the rest of C being the score. The
    result has ``x``'s shape, dtype and device; ``joint`` returns ``x`` itself.
    """
    check_stream(stream)
    if stream == "joint":
        return x
    if x.dim() != 5:
        raise ValueError(f"expected N x C x T x V x M clips, got shape {tuple(x.shape)}")
    if not 0 < dims <= x.shape[1]:
        raise ValueError(f"{dims} coordinate channels in an input of C = {x.shape[1]}")
    if stream in BONE_STREAMS:
        x = _bones(x, parents, dims)
    if stream in MOTION_STREAMS:
        x = _motion(x, dims)
    return x


def _bones(x: Any, parents: Sequence[int] | Any, dims: int) -> Any:
    import torch

    index = torch.as_tensor(parents, dtype=torch.int64, device=x.device)
    if index.dim() != 1 or index.shape[0] != x.shape[3]:
        raise ValueError(f"{index.shape[0]} parents for V = {x.shape[3]} joints")
    parent = x.index_select(3, index)
    return _difference(x, parent, dims)


def _motion(x: Any, dims: int) -> Any:
    import torch

    if x.shape[2] < 2:
        return torch.zeros_like(x)
    moved = _difference(x[:, :, 1:], x[:, :, :-1], dims)
    return torch.cat([moved, torch.zeros_like(x[:, :, :1])], dim=2)


def _difference(a: Any, b: Any, dims: int) -> Any:
    """``a - b`` on the coordinates and the mean of the scores (when there are any)."""
    import torch

    coords = a[:, :dims] - b[:, :dims]
    if a.shape[1] == dims:
        return coords
    return torch.cat([coords, (a[:, dims:] + b[:, dims:]) * 0.5], dim=1)
