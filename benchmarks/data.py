"""Data-path throughput: per-sample reference path vs the batched ClipSampler, side by side.

Run: ``python benchmarks/data.py [--samples 2000] [--batch-size 64] [--clip-len 64] [--repeats 3]``

Both paths do the same work on the same ragged synthetic set (frames 60-300, M=2, V=25, C=3):
train-mode random crop, bilinear resize to clip_len, random rotation, N x C x T x V x M output.

* ``per-sample (reference style)``: what SkelAct's pipeline does per sample in a DataLoader worker:
  legacy NumPy draws, crop by slicing, ``F.interpolate`` bilinear on a 1-sample tensor, float64
  rotation matmul, transpose, then ``torch.stack`` into a batch;
* ``per-sample (numpy reference)``: our test-only `reference_transforms` per sample (vectorised
  NumPy resize), then stack;
* ``batched``: `ClipSampler.draw` (vectorised NumPy Generator) + `ClipSampler.apply` on the host
  set, and on CUDA (when present) on ``SkeletonSet.to('cuda')`` with synchronisation.

Everything on ONE CPU thread (``torch.set_num_threads(1)``). Prints samples/s and the ratio.
The numbers depend on the machine's load: on a shared machine treat them as noisy.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from skelact.data.dataset import SkeletonSet
from skelact.data.transforms import ClipSampler, rotation_matrices
from skelact.layouts import NTU25

NUM_JOINTS = NTU25.num_joints

# The per-sample reference path is test code (tests/reference_transforms.py), not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_transforms import format_nctvm, random_crop_legacy, sample_clip  # noqa: E402


def make_set(
    num: int, seed: int = 0, min_frames: int = 60, max_frames: int = 300
) -> tuple[SkeletonSet, list[np.ndarray]]:
    """A ragged synthetic set with realistic NTU sizes (values do not matter for timing).

    Returns the set and the per-sample M x T x V x C arrays, which is what the reference's
    per-sample pipeline holds in memory (its dataset is the list of annotation dicts).
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_frames, max_frames + 1, num)
    anns = [
        {
            "frame_dir": f"S001C001P001R001A{i % 60 + 1:03d}_{i}",
            "label": i % 60,
            "keypoint": rng.standard_normal((2, int(n), NUM_JOINTS, 3), dtype=np.float32),
        }
        for i, n in enumerate(lengths)
    ]
    return SkeletonSet.from_annotations(anns), [a["keypoint"] for a in anns]


def reference_style_batch(
    kps: list[np.ndarray], idx: np.ndarray, clip_len: int, rotate: float, rs: np.random.RandomState
) -> torch.Tensor:
    """One batch the way the reference pipeline builds it: sample by sample, then collate."""
    theta = rotate * math.pi
    clips = []
    for i in idx:
        kp = kps[i]  # M T V C, as the pickle holds it
        n = kp.shape[1]
        start, length = random_crop_legacy(n, rs)
        crop = kp[:, np.arange(start, start + length)]  # the reference indexes with frame_inds
        m, _, v, _ = crop.shape
        resized = F.interpolate(
            torch.from_numpy(crop.transpose(0, 3, 1, 2)),
            size=(clip_len, v),
            mode="bilinear",
            align_corners=False,
        )
        out = resized.permute(0, 2, 3, 1).numpy()  # M T V C
        if rotate > 0:
            rot = rotation_matrices(rs.uniform(-theta, theta, 3))[0]
            ctvm = out.transpose(3, 1, 2, 0)
            c, t, v, m = ctvm.shape
            ctvm = (rot @ ctvm.reshape(c, -1)).reshape(c, t, v, m).astype(np.float32)
            out = ctvm.transpose(3, 1, 2, 0)
        clips.append(torch.from_numpy(format_nctvm(out)))
    return torch.stack(clips)


def numpy_reference_batch(
    kps: list[np.ndarray], idx: np.ndarray, clip_len: int, rotate: float, rs: np.random.RandomState
) -> torch.Tensor:
    """One batch through our per-sample NumPy reference functions."""
    theta = rotate * math.pi
    clips = []
    for i in idx:
        kp = kps[i]
        start, length = random_crop_legacy(kp.shape[1], rs)
        angles = rs.uniform(-theta, theta, 3) if rotate > 0 else None
        clips.append(
            torch.from_numpy(format_nctvm(sample_clip(kp, start, length, clip_len, angles)))
        )
    return torch.stack(clips)


def time_epoch(run_batch: Callable[[np.ndarray], torch.Tensor], n: int, batch: int, sync=None):
    """Seconds for one pass over a shuffled permutation of n samples, batch by batch."""
    order = np.random.default_rng(1).permutation(n)
    start = time.perf_counter()
    for b in range(0, n, batch):
        run_batch(order[b : b + batch])
    if sync is not None:
        sync()
    return time.perf_counter() - start


def best_rate(fn, n: int, batch: int, repeats: int, sync=None) -> float:
    """Best samples/s over ``repeats`` passes (the least disturbed by other processes)."""
    times = [time_epoch(fn, n, batch, sync) for _ in range(repeats)]
    return n / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--clip-len", type=int, default=64)
    parser.add_argument("--rotate", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(1)
    ds, kps = make_set(args.samples)
    print(
        f"set: {len(ds)} sequences, frames {ds.lengths.min()}-{ds.lengths.max()} "
        f"(mean {ds.lengths.mean():.0f}), ragged array {ds.frames.nbytes / 2**20:.0f} MiB; "
        f"batch {args.batch_size}, clip_len {args.clip_len}, train mode, rotate {args.rotate}; "
        f"torch threads {torch.get_num_threads()}, load avg {os.getloadavg()[0]:.2f}"
    )
    rs = np.random.RandomState(0)
    rng = np.random.default_rng(0)
    sampler = ClipSampler(args.clip_len, train=True, rotate=args.rotate)

    def batched(idx: np.ndarray) -> torch.Tensor:
        return sampler(ds, idx, rng)

    results = {
        "per-sample (reference style)": best_rate(
            lambda idx: reference_style_batch(kps, idx, args.clip_len, args.rotate, rs),
            len(ds),
            args.batch_size,
            args.repeats,
        ),
        "per-sample (numpy reference)": best_rate(
            lambda idx: numpy_reference_batch(kps, idx, args.clip_len, args.rotate, rs),
            len(ds),
            args.batch_size,
            args.repeats,
        ),
        "batched (cpu, 1 thread)": best_rate(batched, len(ds), args.batch_size, args.repeats),
    }
    base = results["per-sample (reference style)"]
    for name, rate in results.items():
        print(f"{name:32s} {rate:10.0f} samples/s   x{rate / base:5.2f} vs reference style")

    if torch.cuda.is_available():
        dev = ds.to("cuda")
        gpu_sampler = ClipSampler(args.clip_len, train=True, rotate=args.rotate, device="cuda")
        for bs in sorted({args.batch_size, 256, 1024}):
            rate = best_rate(
                lambda idx, s=gpu_sampler: s(dev, idx, rng),
                len(ds),
                bs,
                args.repeats + 1,
                sync=torch.cuda.synchronize,
            )
            print(
                f"{'batched (' + torch.cuda.get_device_name() + f', batch {bs})':32s} "
                f"{rate:10.0f} samples/s"
            )
    else:
        print("no CUDA device: GPU throughput not measured")


if __name__ == "__main__":
    main()
