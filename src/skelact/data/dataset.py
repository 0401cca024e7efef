"""The ragged in-memory skeleton set that training, evaluation and prediction sample from.

`SkeletonSet` keeps a whole subset as ONE ragged array: the frames of all samples concatenated,
``(sum T, M, V, C)``, plus offsets. That is ~4x smaller than padding to 300 frames and lets the
batched transforms gather the frames of a whole batch with one indexing operation. Files are
read by `skelact.data.safe_pickle` and checked by `skelact.data.annotations`; this module only
lays the samples out.

The names that the rest of the package imported from here before the data modules were split
(`DatasetError`, `UnsafePickleError`, `safe_load`, `load_annotations`, `check_annotations`,
`validate_file`, `ValidationReport`) are re-exported so that their imports keep working; the
validator's two only on demand, so that training and evaluation do not load (and their DVC
stages need not depend on) `skelact.data.validate`.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from skelact.data.annotations import (
    DEFAULT_LAYOUT,
    check_annotations,
    load_annotations,
    raise_problems,
    sample_layout,
)
from skelact.data.safe_pickle import DatasetError, UnsafePickleError, safe_load

__all__ = [
    "DatasetError",
    "UnsafePickleError",
    "SkeletonSet",
    "safe_load",
    "load_annotations",
    "check_annotations",
]


class SkeletonSet:
    """A subset held as one ragged array; sample i is ``frames[offsets[i]:offsets[i+1]]``.

    ``frames`` is float32 ``(sum T, M, V, C)`` (frame-major so that one index picks a whole frame
    of a sample); ``offsets`` int64 ``(N + 1,)``; ``labels`` int64 ``(N,)``; ``names`` the
    frame_dirs; ``lengths`` int64 ``(N,)``; ``layout`` the joint layout's name (``'ntu25'`` for
    NTU data). C is the coordinates (``dims``: 2 for image-plane x, y, 3 for x, y, z), plus the
    joint score as the last channel when ``with_score`` (``num_channels`` = dims + 1): the models
    then see the detector's confidence, as PYSKL feeds it.

    Storage detail: the frames are kept contiguous as ``storage`` ``(sum T, V, M, C)`` and
    ``frames`` is a transposed *view* of it. That order puts (V, M) next to each other as in the
    model input N x C x T x V x M, so the batched sampler turns a gathered batch into model layout
    with one plain 2-D transpose per sample instead of a slow 5-D permute (~1.5x faster per
    batch on one CPU core). Code that needs a contiguous ``(sum T, M, V, C)`` array must copy.

    After `to`, storage, offsets and labels are torch tensors on that device (upload once, sample
    many times); ``lengths`` and ``host_offsets`` stay NumPy arrays because the random draws and
    the index arithmetic start on the CPU.
    """

    def __init__(
        self,
        frames: Any,
        offsets: Any,
        labels: Any,
        names: list[str],
        source: str = "",
        *,
        num_classes: int | None = None,
        layout: str = DEFAULT_LAYOUT,
        with_score: bool = False,
    ) -> None:
        """Build from a ``(sum T, M, V, C)`` frames array (copied into storage order if needed).

        ``num_classes``: the class count of the data's definition (e.g. 60 for NTU 60); labels
        outside ``[0, num_classes)`` are then an error naming the sample. None derives the count
        from the labels (max + 1). ``with_score``: the last channel of C is a joint score.
        """
        self._init(_to_storage_order(frames), offsets, labels, names, source, num_classes,
                   layout, with_score)  # fmt: skip

    @classmethod
    def from_storage(
        cls,
        storage: Any,
        offsets: Any,
        labels: Any,
        names: list[str],
        source: str = "",
        *,
        num_classes: int | None = None,
        layout: str = DEFAULT_LAYOUT,
        with_score: bool = False,
    ) -> SkeletonSet:
        """Wrap an array already in storage order ``(sum T, V, M, C)`` without copying it."""
        obj = cls.__new__(cls)
        obj._init(storage, offsets, labels, names, source, num_classes, layout, with_score)
        return obj

    def _init(
        self,
        storage: Any,
        offsets: Any,
        labels: Any,
        names: list[str],
        source: str,
        num_classes: int | None,
        layout: str,
        with_score: bool,
    ) -> None:
        self.storage = storage
        self.offsets = offsets
        self.labels = labels
        self.names = list(names)
        self.source = source
        self.layout = str(layout)
        self.with_score = bool(with_score)
        self._num_classes = num_classes
        where = source or "SkeletonSet"
        host = _to_numpy(offsets).astype(np.int64, copy=False)
        if host.ndim != 1 or host.shape[0] != len(self.names) + 1 or host[0] != 0:
            raise DatasetError(
                f"{where}: offsets must be (N + 1,) starting at 0 for N = {len(self.names)} "
                f"samples; got shape {host.shape}"
            )
        if storage.ndim != 4:
            raise DatasetError(f"{where}: frames must be 4-D (sum T, M, V, C)")
        if storage.shape[3] - self.with_score not in (2, 3):
            score = " + 1 score" if self.with_score else ""
            raise DatasetError(
                f"{where}: frames have C = {storage.shape[3]}; expected 2 or 3 coordinates{score}"
            )
        self.host_offsets = host
        self.lengths = np.diff(host)
        if len(self.lengths) and self.lengths.min() < 1:
            raise DatasetError(f"{where}: a sample has no frames")
        if int(host[-1]) != int(storage.shape[0]):
            raise DatasetError(
                f"{where}: offsets end at {int(host[-1])} but there are {storage.shape[0]} frames"
            )
        if len(labels) != len(self.names):
            raise DatasetError(f"{where}: labels and names differ in count")
        if num_classes is not None:
            self._check_labels(where, num_classes)

    def _check_labels(self, where: str, num_classes: int) -> None:
        """Every label in ``[0, num_classes)``, else an error naming the first offending sample."""
        if num_classes < 1:
            raise DatasetError(f"{where}: num_classes must be >= 1, got {num_classes}")
        labels = _to_numpy(self.labels)
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if bad.size:
            i = int(bad[0])
            more = f" ({bad.size} samples in all)" if bad.size > 1 else ""
            raise DatasetError(
                f"{where}: sample {i} ({self.names[i]!r}) has label {int(labels[i])}, outside "
                f"the {num_classes} classes (0..{num_classes - 1}){more}"
            )

    def __repr__(self) -> str:
        return (
            f"SkeletonSet({len(self)} samples, {self.storage.shape[0]} frames, "
            f"M={self.num_persons}, V={self.num_joints}, C={self.num_channels}"
            f"{' (score last)' if self.with_score else ''}, layout={self.layout}, "
            f"on {self.device}, source={self.source!r})"
        )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def frames(self) -> Any:
        """``(sum T, M, V, C)`` view of the storage (NumPy array or torch tensor)."""
        if isinstance(self.storage, np.ndarray):
            return self.storage.transpose(0, 2, 1, 3)
        return self.storage.permute(0, 2, 1, 3)

    @property
    def num_classes(self) -> int:
        """The declared class count, else max label + 1 (labels are 0-based class indices)."""
        if self._num_classes is not None:
            return self._num_classes
        return int(_to_numpy(self.labels).max()) + 1 if len(self) else 0

    @property
    def num_persons(self) -> int:
        return int(self.storage.shape[2])

    @property
    def num_joints(self) -> int:
        return int(self.storage.shape[1])

    @property
    def num_channels(self) -> int:
        """The model's input channels: the coordinates, plus the score when ``with_score``."""
        return int(self.storage.shape[3])

    @property
    def dims(self) -> int:
        """Coordinate channels: 2 (image-plane x, y) or 3 (x, y, z); the score is not one."""
        return self.num_channels - int(self.with_score)

    @property
    def device(self) -> str:
        """'numpy' for host arrays, else the torch device string."""
        return "numpy" if isinstance(self.storage, np.ndarray) else str(self.storage.device)

    def sample(self, index: int) -> np.ndarray:
        """Sample ``index`` as the pickles store it: M x T x V x C float32 (a NumPy copy)."""
        a, b = int(self.host_offsets[index]), int(self.host_offsets[index + 1])
        return np.ascontiguousarray(_to_numpy(self.storage[a:b]).transpose(2, 0, 1, 3))

    def to(self, device: Any) -> SkeletonSet:
        """A copy whose arrays are torch tensors on ``device`` (upload once, sample many times)."""
        import torch

        storage = self.storage
        if isinstance(storage, np.ndarray):
            storage = torch.from_numpy(storage)
        storage = storage.to(device)
        offsets = torch.as_tensor(self.host_offsets, dtype=torch.int64).to(device)
        labels = torch.as_tensor(_to_numpy(self.labels), dtype=torch.int64).to(device)
        return SkeletonSet.from_storage(
            storage, offsets, labels, self.names, self.source, **self._meta()
        )

    def subset(self, indices: Iterable[int]) -> SkeletonSet:
        """A new host set with the given samples in the given order (copies their frames)."""
        idx = np.asarray(list(indices), dtype=np.int64)
        storage = _to_numpy(self.storage)
        offsets = self.host_offsets
        new_offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(self.lengths[idx], out=new_offsets[1:])
        out = np.empty((int(new_offsets[-1]),) + storage.shape[1:], dtype=np.float32)
        for j, i in enumerate(idx):
            out[new_offsets[j] : new_offsets[j + 1]] = storage[offsets[i] : offsets[i + 1]]
        labels = _to_numpy(self.labels)[idx].copy()
        names = [self.names[i] for i in idx]
        return SkeletonSet.from_storage(
            out, new_offsets, labels, names, self.source, **self._meta()
        )

    def _meta(self) -> dict[str, Any]:
        """What a copy (`to`, `subset`) keeps besides the arrays."""
        return {
            "num_classes": self._num_classes,
            "layout": self.layout,
            "with_score": self.with_score,
        }

    @classmethod
    def from_annotations(
        cls,
        annotations: list[dict],
        *,
        num_persons: int | None = 2,
        source: str = "",
        consume: bool = False,
        validate: bool = True,
        num_classes: int | None = None,
        with_score: bool = False,
    ) -> SkeletonSet:
        """Concatenate validated annotation dicts into one ragged float32 array.

        ``num_persons``: like the reference's FormatGCNInput, samples with fewer persons are
        zero-padded and extra persons beyond it are dropped (the reference keeps the first 2);
        None keeps the largest M in the set. ``consume=True`` removes each keypoint array from
        its dict right after copying, so the peak memory stays about one copy of the data (the
        target array is allocated lazily by the OS and filled as the sources are freed).
        ``validate=False`` skips the per-sample checks (for annotations `load_annotations` has
        just checked); ``num_classes`` as in the constructor. ``with_score``: append each
        sample's ``keypoint_score`` as the last channel (a sample without one is an error
        naming it); otherwise scores are not read.
        """
        where = source or "annotations"
        if not annotations:
            raise DatasetError(f"{where}: no samples")
        problems = check_annotations(annotations, num_classes) if validate else []
        if problems:
            raise_problems(Path(where), problems)
        if with_score:
            _require_scores(annotations, where)
        shapes = [a["keypoint"].shape for a in annotations]
        m_out = num_persons if num_persons is not None else max(s[0] for s in shapes)
        v, c = shapes[0][2], shapes[0][3]
        lengths = np.fromiter((s[1] for s in shapes), dtype=np.int64, count=len(shapes))
        offsets = np.zeros(len(shapes) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        storage = np.empty((int(offsets[-1]), v, m_out, c + int(with_score)), dtype=np.float32)
        labels = np.empty(len(shapes), dtype=np.int64)
        names: list[str] = []
        layout = sample_layout(annotations[0])
        for i, ann in enumerate(annotations):
            kp = ann.pop("keypoint") if consume else ann["keypoint"]
            m = min(kp.shape[0], m_out)
            block = storage[offsets[i] : offsets[i + 1]]
            block[:, :, :m, :c] = kp[:m].transpose(1, 2, 0, 3)  # M T V C -> T V M C (to f32)
            if with_score:
                score = ann.pop("keypoint_score") if consume else ann["keypoint_score"]
                block[:, :, :m, c] = score[:m].transpose(1, 2, 0)
                del score
            if m < m_out:
                block[:, :, m:] = 0.0
            del kp
            if consume and i % 256 == 255:
                _release_freed_memory()
            labels[i] = int(ann["label"])
            names.append(str(ann["frame_dir"]))
        if consume:
            _release_freed_memory()
        return cls.from_storage(storage, offsets, labels, names, source, num_classes=num_classes,
                                layout=layout, with_score=with_score)  # fmt: skip

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        split: str | None = None,
        *,
        num_persons: int | None = 2,
        num_classes: int | None = None,
        with_score: bool = False,
    ) -> SkeletonSet:
        """Load a pickle of either format (``split`` for PYSKL files) into a ragged set.

        Refuses, naming the sample, anything `load_annotations` refuses: unsafe or hostile
        pickles, malformed samples, NaN or inf coordinates, scores outside [0, 1], raw 3-D
        coordinates, labels outside ``num_classes``; with ``with_score``, samples without scores.
        """
        annotations = load_annotations(path, split, num_classes=num_classes)
        return cls.from_annotations(
            annotations,
            num_persons=num_persons,
            source=str(path),
            consume=True,
            validate=False,
            num_classes=num_classes,
            with_score=with_score,
        )


def _require_scores(annotations: list[dict], where: str) -> None:
    """Every sample carries ``keypoint_score``, else an error naming the first that does not."""
    missing = [i for i, a in enumerate(annotations) if "keypoint_score" not in a]
    if missing:
        first = annotations[missing[0]]
        raise DatasetError(
            f"{where}: sample {missing[0]} ({first.get('frame_dir')!r}) has no keypoint_score "
            f"({len(missing)} of {len(annotations)} sample(s) without), but with_score feeds the "
            "score as an input channel; set with_score: false or use data with scores"
        )


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS while converting (glibc only; else a no-op).

    The unpickled per-sample arrays live on the C heap; freeing them does not lower the process's
    memory until the allocator trims, so without this the load peaks at two copies of the data.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _to_storage_order(frames: Any) -> Any:
    """``(sum T, M, V, C)`` -> contiguous ``(sum T, V, M, C)``; free when it is our own view."""
    if isinstance(frames, np.ndarray):
        swapped = frames.transpose(0, 2, 1, 3)
        return np.ascontiguousarray(swapped, dtype=np.float32)
    import torch

    return frames.permute(0, 2, 1, 3).contiguous().to(torch.float32)


def _to_numpy(array: Any) -> np.ndarray:
    if isinstance(array, np.ndarray):
        return array
    return array.detach().cpu().numpy()


def __getattr__(name: str) -> Any:
    """`validate_file` and `ValidationReport`, imported from `skelact.data.validate` on demand."""
    if name in ("validate_file", "ValidationReport"):
        from skelact.data import validate

        return getattr(validate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
