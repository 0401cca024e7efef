"""The reference clip sampling and augmentation, for a whole batch at once, on any device.

The reference (SkelAct's PoseRandomCrop / PoseCenterCrop / PoseResize / PoseRandomRotate, then
FormatGCNInput) processes one sample at a time in NumPy inside DataLoader workers. Here the same
computation is split in two:

1. `ClipSampler.draw`: the random numbers only (crop length and start, rotation angles) for a
   batch, drawn on the CPU with NumPy -- a few vectorised calls, no per-sample work;
2. `ClipSampler.apply`: the arithmetic, batched with tensor ops on the device that holds the data.
   Bilinear resizing along time with ``align_corners=False`` and the joint axis unchanged is a
   linear interpolation between two neighbouring frames of the crop, so every output time step
   is ``w0 * frames[g0] + w1 * frames[g1]`` with global row indices ``g0, g1`` into the ragged
   frame array; one ``index_select`` per neighbour fetches the whole batch, and one batched
   matmul applies each sample's rotation. The index/weight arithmetic mirrors
   ``torch.nn.functional.interpolate`` (float32 source index, clamped at 0, right neighbour
   clamped at the last frame) so results equal the reference to float rounding.

2-D data (image-plane x, y) is not turned about three axes: its augmentation is a rotation in
the image plane (one angle per sample) and, when ``scale_range`` is given, a random isotropic
scale, drawn after the crop in that order. Only the coordinates are transformed; a score channel
(``SkeletonSet.with_score``) passes through unchanged. 3-D data keeps the reference's draws and
arithmetic exactly (the optional scale is drawn after its angles, so without it the stream is the
reference's).

`draw_legacy` reproduces the reference's exact random stream (NumPy's legacy global generator,
per sample: length, start, angles) for parity with seeded reference runs.

A training epoch is prepared once (`ClipSampler.draw_batches` + `ClipSampler.plan`): the draws of
all its batches are made before the first step and the index arithmetic's inputs (first frame
row, crop length, rotation matrix per sample) are uploaded in one copy, so that a step on a GPU
only slices a `Plan` and runs `ClipSampler.gather` on device-resident tensors -- no host work,
no upload per step. The epoch's draws are made batch after batch from the same generator, so the
random stream, and every result, equals drawing per batch: one vectorised draw for the whole
epoch would reorder the stream (all lengths, then all starts) and change every seeded run.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skelact.data.sampling import center_crop
from skelact.data.streams import check_stream, stream_features

__all__ = [
    "Draws",
    "Plan",
    "ClipSampler",
    "rotation_matrices",
    "plane_rotations",
    "transform_matrices",
    "interp_indices",
]


@dataclass
class Draws:
    """The random (or, for val, deterministic) choices for one batch, all on the CPU.

    ``starts``/``lens``: int64 ``(N,)`` crop start and length per sample; ``angles``: float64
    ``(N, 3)`` rotation angles (z, y, x) in radians for 3-D data, ``(N, 1)`` in-plane angles for
    2-D data, or None when rotation is off; ``scales``: float64 ``(N,)`` isotropic scale factors,
    or None when scaling is off.
    """

    starts: np.ndarray
    lens: np.ndarray
    angles: np.ndarray | None = None
    scales: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @classmethod
    def concat(cls, parts: list[Draws]) -> Draws:
        """The draws of consecutive batches as one (rotations/scales in all parts or none)."""
        angles = [d.angles for d in parts]
        scales = [d.scales for d in parts]
        return cls(
            starts=np.concatenate([d.starts for d in parts]),
            lens=np.concatenate([d.lens for d in parts]),
            angles=None if any(a is None for a in angles) else np.concatenate(angles),
            scales=None if any(a is None for a in scales) else np.concatenate(scales),
        )


@dataclass
class Plan:
    """The device-side inputs of `ClipSampler.gather` for consecutive samples.

    ``rows``: int64 ``(N,)`` global storage row of each crop's first frame; ``lens``: int64
    ``(N,)`` crop lengths; ``rot``: float32 ``(N, C, C)`` per-sample matrices (rotation, times
    the scale, identity on a score channel; ``(N, 3, 3)`` rotations for 3-D data) or None. All
    on the device that holds the data; slicing (``plan[a:b]``) is free, so an epoch's plan is
    built and uploaded once and each step takes its batch's rows.
    """

    rows: torch.Tensor
    lens: torch.Tensor
    rot: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, part: slice) -> Plan:
        rot = None if self.rot is None else self.rot[part]
        return Plan(rows=self.rows[part], lens=self.lens[part], rot=rot)


def rotation_matrices(angles: np.ndarray) -> np.ndarray:
    """``R = Rz(a0) @ Ry(a1) @ Rx(a2)`` for each row of ``angles`` (N, 3) -> (N, 3, 3) float64."""
    angles = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    cos, sin = np.cos(angles), np.sin(angles)
    n = angles.shape[0]
    rz = np.zeros((n, 3, 3))
    ry = np.zeros((n, 3, 3))
    rx = np.zeros((n, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1] = cos[:, 0], -sin[:, 0], sin[:, 0], cos[:, 0]
    rz[:, 2, 2] = 1.0
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 2, 0], ry[:, 2, 2] = cos[:, 1], sin[:, 1], -sin[:, 1], cos[:, 1]
    ry[:, 1, 1] = 1.0
    rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = cos[:, 2], -sin[:, 2], sin[:, 2], cos[:, 2]
    rx[:, 0, 0] = 1.0
    return rz @ ry @ rx


def plane_rotations(angles: np.ndarray) -> np.ndarray:
    """``[[cos a, -sin a], [sin a, cos a]]`` for each angle ``(N,)`` -> ``(N, 2, 2)`` float64."""
    angles = np.asarray(angles, dtype=np.float64).reshape(-1)
    cos, sin = np.cos(angles), np.sin(angles)
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


def transform_matrices(draws: Draws, dims: int, channels: int) -> np.ndarray | None:
    """The per-sample ``(N, channels, channels)`` float32 matrix of ``draws``, or None.

    The rotation (3-D: `rotation_matrices`; 2-D: `plane_rotations`) times the scale acts on the
    ``dims`` coordinate channels; any channel after them (a score) maps to itself. For 3-D data
    without scaling this is exactly ``rotation_matrices(angles)`` in float32.
    """
    if draws.angles is None and draws.scales is None:
        return None
    n = len(draws)
    if draws.angles is None:
        coords = np.broadcast_to(np.eye(dims), (n, dims, dims))
    elif dims == 3:
        coords = rotation_matrices(draws.angles)
    else:
        coords = plane_rotations(draws.angles[:, 0])
    if draws.scales is not None:
        coords = coords * draws.scales[:, None, None]
    if channels == dims:
        return np.ascontiguousarray(coords, dtype=np.float32)
    full = np.tile(np.eye(channels), (n, 1, 1))
    full[:, :dims, :dims] = coords
    return full.astype(np.float32)


def interp_indices(
    lens: torch.Tensor, clip_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left/right source frame (within the crop) and right weight per output step, (N, T) each.

    The device twin of :func:`skelact.data.sampling.interp_indices` (NumPy, for the torch-free
    deployment path): computed where the data lives so that a GPU step copies nothing from the
    host; ``tests/test_deploy_sampling.py`` proves the two bit-equal.

    Same arithmetic as PyTorch's bilinear ``align_corners=False`` in float32: scale = L / T,
    src = scale * (t + 0.5) - 0.5 clamped at 0, i0 = floor(src) (at most L - 1),
    i1 = i0 + (i0 < L - 1), lambda = src - i0. When L == T this is exactly the identity
    (src = t in float32), matching PyTorch's own same-size shortcut.
    """
    device = lens.device
    lens_f = lens.to(torch.float32)
    scale = (lens_f / float(clip_len)).unsqueeze(1)
    t = torch.arange(clip_len, device=device, dtype=torch.float32).unsqueeze(0) + 0.5
    src = (scale * t - 0.5).clamp_min_(0.0)
    last = (lens - 1).unsqueeze(1)
    i0 = torch.minimum(src.floor().to(torch.int64), last)
    lam = (src - i0.to(torch.float32)).clamp_(0.0, 1.0)
    i1 = i0 + (i0 < last).to(torch.int64)
    return i0, i1, lam


class ClipSampler:
    """Crop + resize to ``clip_len`` (+ rotation and scale) for batches of a `SkeletonSet`.

    ``train=True``: random crop with length uniform in [int(0.5 n), int(1.0 n)], clamped to
    [min(min_len, n), n], start uniform, then resize and (when ``rotate`` > 0) a random rotation
    with angles uniform in [-rotate*pi, rotate*pi] (three angles for ``dims`` = 3, one in the
    image plane for ``dims`` = 2), then (when ``scale_range`` = (lo, hi) is given) a scale
    uniform in [lo, hi]. ``train=False``: centre crop of ``int(n * clip_ratio)`` frames (at
    least 1), resize, no rotation or scale. Then the input ``stream``
    (:mod:`skelact.data.streams`: bones by the layout's ``parents``, and/or motion) of the
    sampled clip. Output N x C x T x V x M float32 on ``device``.

    ``data`` may be a host `SkeletonSet` (NumPy arrays; the batch is gathered on the CPU and the
    result moved to ``device``) or ``SkeletonSet.to(device)`` (everything stays on the device;
    upload once per run, the recommended form on a GPU).
    """

    def __init__(
        self,
        clip_len: int,
        *,
        train: bool,
        clip_ratio: float = 0.9,
        rotate: float = 0.0,
        scale_range: tuple[float, float] | None = None,
        dims: int = 3,
        min_len: int = 64,
        min_ratio: float = 0.5,
        max_ratio: float = 1.0,
        device: str | torch.device = "cpu",
        stream: str = "joint",
        parents: tuple[int, ...] | None = None,
    ) -> None:
        if clip_len < 1:
            raise ValueError(f"clip_len must be >= 1, got {clip_len}")
        if not 0 < clip_ratio <= 1:
            raise ValueError(f"clip_ratio must be in (0, 1], got {clip_ratio}")
        if not 0 < min_ratio <= max_ratio <= 1:
            raise ValueError(f"need 0 < min_ratio <= max_ratio <= 1, got {min_ratio}, {max_ratio}")
        if rotate < 0:
            raise ValueError(f"rotate must be >= 0, got {rotate}")
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 (x, y) or 3 (x, y, z), got {dims}")
        if scale_range is not None and not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be (lo, hi) with 0 < lo <= hi, got {scale_range}")
        check_stream(stream)
        if stream != "joint" and parents is None:
            raise ValueError(f"the {stream} stream needs the layout's parents")
        self.clip_len = int(clip_len)
        self.train = bool(train)
        self.clip_ratio = float(clip_ratio)
        self.rotate = float(rotate) if train else 0.0
        self.dims = int(dims)
        self.scale_range = (
            (float(scale_range[0]), float(scale_range[1])) if train and scale_range else None
        )
        self.min_len = int(min_len)
        self.min_ratio = float(min_ratio)
        self.max_ratio = float(max_ratio)
        self.device = torch.device(device)
        self.stream = stream
        self.parents = tuple(int(p) for p in parents) if parents is not None else None
        self._parents_on: dict[torch.device, torch.Tensor] = {}  # uploaded once per device
        self._local = threading.local()

    def __repr__(self) -> str:
        mode = (
            f"train, {self.dims}-D, rotate={self.rotate}, scale_range={self.scale_range}, "
            f"min_len={self.min_len}"
            if self.train
            else f"val, clip_ratio={self.clip_ratio}"
        )
        return (
            f"ClipSampler(clip_len={self.clip_len}, {mode}, stream={self.stream}, "
            f"device={self.device})"
        )

    # ---------------------------------------------------------------- draws (CPU, NumPy)
    def _center(self, n: np.ndarray) -> Draws:
        starts, lens = center_crop(n, self.clip_ratio)  # the one val rule (also torch-free)
        return Draws(starts=starts, lens=lens)

    def _clamp(self, lens: np.ndarray, n: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(lens, self.min_len), n)

    def draw(self, lengths: np.ndarray, rng: np.random.Generator | None = None) -> Draws:
        """Choices for samples of the given frame counts, vectorised with a NumPy Generator.

        Val mode is deterministic and ignores ``rng``. Train mode needs ``rng``.
        """
        n = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if not self.train:
            return self._center(n)
        if rng is None:
            raise ValueError("train-mode ClipSampler.draw needs an rng (np.random.Generator)")
        lo = (n * self.min_ratio).astype(np.int64)
        hi = (n * self.max_ratio).astype(np.int64)
        lens = self._clamp(rng.integers(lo, hi + 1), n)
        starts = rng.integers(0, n - lens + 1)
        angles = scales = None
        if self.rotate > 0:
            theta = self.rotate * math.pi
            angles = rng.uniform(-theta, theta, size=(n.shape[0], 3 if self.dims == 3 else 1))
        if self.scale_range is not None:
            scales = rng.uniform(*self.scale_range, size=n.shape[0])
        return Draws(starts=starts.astype(np.int64), lens=lens.astype(np.int64), angles=angles,
                     scales=scales)  # fmt: skip

    def draw_batches(
        self, lengths: list[np.ndarray], rng: np.random.Generator | None = None
    ) -> Draws:
        """`draw` for each batch in turn (frame counts per batch), concatenated.

        The same generator calls in the same order as drawing at each step, so the result is
        identical to it (``tests/test_train_fastpath.py`` checks); made before an epoch so that
        its draws are uploaded in one copy.
        """
        if not lengths:
            angles = np.zeros((0, 3 if self.dims == 3 else 1)) if self.rotate > 0 else None
            scales = np.zeros(0) if self.scale_range is not None else None
            return Draws(np.zeros(0, np.int64), np.zeros(0, np.int64), angles, scales)
        return Draws.concat([self.draw(n, rng) for n in lengths])

    def draw_legacy(
        self, lengths: np.ndarray, random_state: np.random.RandomState | None = None
    ) -> Draws:
        """Choices drawn exactly as the reference does, sample after sample.

        Uses ``random_state`` (or NumPy's legacy global generator, i.e. what ``np.random.seed``
        seeds, when None) in the reference's order: ``randint(int(0.5 n), int(1.0 n) + 1)``,
        ``randint(0, n - L + 1)``, then ``uniform(-r pi, r pi, 3)`` when rotating. Slower than
        `draw` (a Python loop over the batch); meant for parity with seeded reference runs.
        """
        n = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if not self.train:
            return self._center(n)
        if self.dims != 3 or self.scale_range is not None:
            raise ValueError("draw_legacy is the reference's 3-D stream: no 2-D draws or scales")
        rs: Any = np.random if random_state is None else random_state
        starts = np.empty(n.shape[0], dtype=np.int64)
        lens = np.empty(n.shape[0], dtype=np.int64)
        angles = np.empty((n.shape[0], 3)) if self.rotate > 0 else None
        theta = self.rotate * math.pi
        for i, frames in enumerate(n.tolist()):
            length = rs.randint(int(frames * self.min_ratio), int(frames * self.max_ratio) + 1)
            length = min(max(length, self.min_len), frames)
            starts[i] = rs.randint(0, frames - length + 1)
            lens[i] = length
            if angles is not None:
                angles[i] = rs.uniform(-theta, theta, 3)
        return Draws(starts=starts, lens=lens, angles=angles)

    # ---------------------------------------------------------------- apply (batched, device)
    def _workspace(self, device: torch.device, rows: int, width: int):
        """Two reusable (rows, width) float32 buffers per thread and device.

        Reusing them matters on the CPU: a fresh multi-MB tensor per batch is a fresh mmap whose
        page faults cost as much as the arithmetic (much more inside some VMs). The returned
        batch is always a new tensor; only intermediates live here. Per thread, so one sampler
        may serve several loader threads.
        """
        cache = getattr(self._local, "buffers", None)
        if cache is None:
            cache = self._local.buffers = {}
        key = (str(device), width)
        bufs = cache.get(key)
        if bufs is None or bufs[0].shape[0] < rows:
            shape = (rows, width)
            bufs = tuple(torch.empty(shape, dtype=torch.float32, device=device) for _ in "ab")
            cache[key] = bufs
        return bufs[0][:rows], bufs[1][:rows]

    def plan(self, data: Any, indices: Any, draws: Draws) -> Plan:
        """Check ``draws`` against the samples ``indices`` of ``data`` and upload what
        `gather` needs, in one copy per array, to the device that holds the data."""
        idx = _as_index_array(indices)
        if len(draws) != idx.shape[0]:
            raise ValueError(f"{len(draws)} draws for {idx.shape[0]} samples")
        n = data.lengths[idx]
        if (
            np.any(draws.starts < 0)
            or np.any(draws.lens < 1)
            or np.any(draws.starts + draws.lens > n)
        ):
            raise ValueError("draws do not fit the samples' frame counts (crop out of range)")
        work = _storage(data).device
        rows = _upload(_offsets_numpy(data)[idx] + draws.starts, work)
        lens = _upload(np.ascontiguousarray(draws.lens), work)
        rot = None
        if draws.angles is not None or draws.scales is not None:
            dims = getattr(data, "dims", data.num_channels)
            if dims != self.dims:
                raise ValueError(
                    f"this sampler augments {self.dims}-D coordinates; the data has {dims} "
                    f"(C = {data.num_channels})"
                )
            matrices = transform_matrices(draws, dims, data.num_channels)
            rot = _upload(np.ascontiguousarray(matrices), work)
        return Plan(rows=rows, lens=lens, rot=rot)

    def gather(self, data: Any, plan: Plan) -> torch.Tensor:
        """Crop, resize and rotate/scale the planned samples of ``data`` -> N x C x T x V x M.

        Only tensor operations on the data's device: on a GPU-resident set a step neither waits
        for the host nor copies to the device.
        """
        storage = _storage(data)  # (sum T, V, M, C), see SkeletonSet
        work = storage.device  # gather where the data lives, then move the (small) result
        i0, i1, lam = interp_indices(plan.lens, self.clip_len)
        base = plan.rows.unsqueeze(1)
        batch, t_out = i0.shape
        _, v, m, c = storage.shape
        rows = batch * t_out
        flat = storage.view(storage.shape[0], v * m * c)
        f0, f1 = self._workspace(work, rows, v * m * c)
        torch.index_select(flat, 0, (base + i0).reshape(-1), out=f0)
        torch.index_select(flat, 0, (base + i1).reshape(-1), out=f1)
        lam = lam.reshape(rows, 1)
        # x0 * (1 - lambda) + x1 * lambda, the products in the same order as F.interpolate
        f0.mul_(1.0 - lam).addcmul_(f1, lam)
        # per sample a (T V M) x C matrix; its transpose C x (T V M) is N x C x T x V x M
        points = f0.view(batch, t_out * v * m, c).transpose(1, 2)
        out = torch.empty((batch, c, t_out, v, m), dtype=torch.float32, device=work)
        if plan.rot is None:
            out.view(batch, c, -1).copy_(points)
        else:
            # transpose into the spare buffer first: a GEMM on contiguous rows is ~2x faster
            # than one that reads the transposed operand
            tmp = f1.view(batch, c, t_out * v * m)
            tmp.copy_(points)
            torch.bmm(plan.rot, tmp, out=out.view(batch, c, -1))  # every point p -> R p
        if self.stream != "joint":
            dims = getattr(data, "dims", self.dims)
            out = stream_features(out, self.stream, self._parents_tensor(work), dims)
        return out.to(self.device, non_blocking=True)

    def _parents_tensor(self, device: torch.device) -> torch.Tensor:
        parents = self._parents_on.get(device)
        if parents is None:
            parents = self._parents_on[device] = torch.tensor(self.parents, device=device)
        return parents

    def apply(self, data: Any, indices: Any, draws: Draws) -> torch.Tensor:
        """Crop, resize and rotate the samples ``indices`` of ``data`` -> N x C x T x V x M."""
        return self.gather(data, self.plan(data, indices, draws))

    def __call__(
        self, data: Any, indices: Any, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """`draw` for the samples' lengths, then `apply`."""
        idx = _as_index_array(indices)
        return self.apply(data, idx, self.draw(data.lengths[idx], rng))


def _as_index_array(indices: Any) -> np.ndarray:
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    return np.asarray(indices, dtype=np.int64).reshape(-1)


def _storage(data: Any) -> torch.Tensor:
    """The set's ``(sum T, V, M, C)`` storage as a tensor (a free view of a host array)."""
    storage = data.storage
    return torch.from_numpy(storage) if isinstance(storage, np.ndarray) else storage


def _upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """One host-to-device copy; from pinned memory and asynchronous on CUDA, so the host does
    not wait for it (the pinned source stays alive until the copy has run: the caching host
    allocator records the stream that used it)."""
    host = torch.from_numpy(array)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def _offsets_numpy(data: Any) -> np.ndarray:
    """Host copy of the offsets: the index arithmetic starts on the CPU next to the draws."""
    host = getattr(data, "host_offsets", None)
    if host is not None:
        return host
    offsets = data.offsets
    return offsets if isinstance(offsets, np.ndarray) else offsets.detach().cpu().numpy()
