"""Loading the preprocessed skeleton pickles safely, into one ragged in-memory array.

Two on-disk formats exist (both written by ``skelact preprocess``):

* MMAction2 0.x: a list of annotation dicts (one file per benchmark and subset);
* PYSKL / MMAction2 1.x: ``{'split': {name: [frame_dir, ...]}, 'annotations': [dicts]}``, one file
  for all benchmarks, so a split key such as ``'xsub_val'`` selects the samples.

Each annotation dict has ``frame_dir``, ``label`` (0-based int), ``total_frames`` and ``keypoint``
(float32, M x T x V x C). Pickles are code, so they are read with a restricted unpickler that
only rebuilds plain containers and NumPy arrays: a tampered file fails with `UnsafePickleError`
instead of running anything.

`SkeletonSet` keeps a whole subset as ONE ragged array: the frames of all samples concatenated,
``(sum T, M, V, C)``, plus offsets. That is ~4x smaller than padding to 300 frames and lets the
batched transforms gather the frames of a whole batch with one indexing operation.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import io
import pickle
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DatasetError",
    "UnsafePickleError",
    "SkeletonSet",
    "ValidationReport",
    "safe_load",
    "load_annotations",
    "check_annotations",
    "validate_file",
]

REQUIRED_KEYS: tuple[str, ...] = ("frame_dir", "label", "keypoint")
MAX_LISTED_PROBLEMS = 20


class DatasetError(ValueError):
    """A data file exists but is not a usable skeleton pickle; the message names file and cause."""


class UnsafePickleError(DatasetError):
    """The pickle asks to import something a skeleton pickle never contains (possible tampering)."""


# --------------------------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------------------------

# (module, name) pairs that a skeleton pickle legitimately references. Everything here only
# rebuilds data: containers, NumPy dtypes, arrays and scalars. Nothing can call os/subprocess/eval.
_BUILTINS = frozenset(
    {
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "int",
        "float",
        "complex",
        "bool",
        "str",
        "bytes",
        "bytearray",
    }
)
# NumPy moved numpy.core to numpy._core in 2.0; pickles from either era name one of the two.
_NUMPY_MODULE_NAMES = {
    "multiarray": frozenset({"_reconstruct", "scalar"}),
    "numeric": frozenset({"_frombuffer"}),  # ndarray.__reduce_ex__ with protocol 5
}
_NUMPY_TOP = frozenset({"ndarray", "dtype"})
# Protocol-2 pickles (Python 2 era) encode raw bytes with _codecs.encode(str, 'latin1').
_CODECS = frozenset({"encode"})


def _numpy_scalar_type_names() -> frozenset[str]:
    """Names of NumPy's scalar types (float32, int64, bool_, ...), pickled as globals."""
    names = set()
    for type_name in np.sctypeDict.values() if hasattr(np, "sctypeDict") else ():
        if isinstance(type_name, type) and issubclass(type_name, np.generic):
            names.add(type_name.__name__)
    return frozenset(names)


_NUMPY_SCALARS = _numpy_scalar_type_names()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals listed above and refuses everything else."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _BUILTINS:
            return getattr(importlib.import_module("builtins"), name)
        if module == "_codecs" and name in _CODECS:
            return getattr(importlib.import_module("_codecs"), name)
        if (
            module == "numpy"
            and (name in _NUMPY_TOP or name in _NUMPY_SCALARS)
            and hasattr(np, name)
        ):
            return getattr(np, name)
        if module == "numpy.dtypes" and name.endswith("DType"):
            # NumPy >= 1.25 may pickle dtype classes such as numpy.dtypes.Float32DType.
            import numpy.dtypes as np_dtypes

            if hasattr(np_dtypes, name):
                return getattr(np_dtypes, name)
        for prefix in ("numpy.core.", "numpy._core."):
            if module.startswith(prefix):
                submodule = module[len(prefix) :]
                if name in _NUMPY_MODULE_NAMES.get(submodule, ()):
                    return _import_numpy_core(submodule, name)
        raise UnsafePickleError(
            f"{self._source}: refusing to load: the pickle references {module}.{name}, which a "
            "skeleton pickle never contains (only builtins containers and NumPy arrays are "
            "allowed); the file may have been tampered with"
        )


def _import_numpy_core(submodule: str, name: str) -> Any:
    """Resolve numpy.core.X / numpy._core.X under whichever NumPy is installed (no warnings)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            module = importlib.import_module(f"{package}.{submodule}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise UnsafePickleError(f"numpy has no {submodule}.{name} in this version")


def safe_load(path: str | Path) -> object:
    """Unpickle ``path`` allowing only containers and NumPy arrays (never arbitrary code).

    Raises FileNotFoundError for a missing file, `UnsafePickleError` for a pickle that references
    anything else (e.g. ``os.system``), and `DatasetError` for a file that is not a pickle.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise DatasetError(f"{path}: not a file (expected a .pkl skeleton pickle)")
    with path.open("rb") as handle:
        try:
            return _RestrictedUnpickler(handle, str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
            raise DatasetError(
                f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); expected a "
                "skeleton pickle written by `skelact preprocess`"
            ) from exc
        except (IndexError, KeyError, UnicodeDecodeError, OverflowError) as exc:
            raise DatasetError(f"{path}: corrupt pickle ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------------------------
# Structure checks
# --------------------------------------------------------------------------------------------


def _select_split(obj: object, path: Path, split: str | None) -> list:
    """Return the annotation list of either format, applying a PYSKL split when asked."""
    if isinstance(obj, list):
        if split is not None:
            raise DatasetError(
                f"{path}: split {split!r} given, but this is an MMAction2 0.x pickle (a plain list "
                "of samples, one file per subset) which has no splits; omit the split"
            )
        return obj
    if isinstance(obj, dict) and "annotations" in obj and "split" in obj:
        splits, annotations = obj["split"], obj["annotations"]
        if not isinstance(splits, dict) or not isinstance(annotations, list):
            raise DatasetError(
                f"{path}: PYSKL-format pickle needs 'split' to be a dict and 'annotations' a "
                f"list; got {type(splits).__name__} and {type(annotations).__name__}"
            )
        available = ", ".join(repr(k) for k in splits) or "none"
        if split is None:
            raise DatasetError(
                f"{path}: this PYSKL/MMAction2 1.x pickle holds several subsets; choose one with "
                f"a split key (available: {available})"
            )
        if split not in splits:
            raise DatasetError(f"{path}: no split {split!r}; available splits: {available}")
        wanted = splits[split]
        if not isinstance(wanted, (list, tuple)):
            raise DatasetError(f"{path}: split {split!r} is not a list of sample names")
        wanted_set = set(wanted)
        key_of = _identifier_key(annotations)
        selected = [a for a in annotations if isinstance(a, dict) and a.get(key_of) in wanted_set]
        found = {a.get(key_of) for a in selected}
        missing = [name for name in wanted if name not in found]
        if missing:
            shown = ", ".join(map(str, missing[:5]))
            raise DatasetError(
                f"{path}: split {split!r} lists {len(missing)} sample(s) with no annotation "
                f"(e.g. {shown})"
            )
        return selected
    if isinstance(obj, dict):
        raise DatasetError(
            f"{path}: wrong structure: a dict with keys {sorted(map(str, obj))[:10]}; expected a "
            "list of sample dicts (MMAction2 0.x) or a dict with 'split' and 'annotations' "
            "(PYSKL / MMAction2 1.x)"
        )
    raise DatasetError(
        f"{path}: wrong structure: a {type(obj).__name__}; expected a list of sample dicts "
        "(MMAction2 0.x) or a dict with 'split' and 'annotations' (PYSKL / MMAction2 1.x)"
    )


def _identifier_key(annotations: list) -> str:
    """PYSKL identifies samples by 'frame_dir' (or 'filename' in some RGB-based files)."""
    first = annotations[0] if annotations and isinstance(annotations[0], dict) else {}
    return "filename" if "filename" in first and "frame_dir" not in first else "frame_dir"


def _sample_problems(index: int, ann: object) -> list[str]:
    """Everything wrong with one annotation dict (empty list = fine)."""
    if not isinstance(ann, dict):
        return [f"sample {index}: a {type(ann).__name__}, expected a dict"]
    who = f"sample {index} ({ann['frame_dir']!r})" if "frame_dir" in ann else f"sample {index}"
    missing = [k for k in REQUIRED_KEYS if k not in ann]
    problems = []
    if missing:
        problems.append(
            f"{who}: missing key(s) {missing} (has {sorted(map(str, ann))}); required: "
            f"{list(REQUIRED_KEYS)}"
        )
    if "frame_dir" in ann and not isinstance(ann["frame_dir"], str):
        problems.append(f"{who}: frame_dir is a {type(ann['frame_dir']).__name__}, expected str")
    if "label" in ann:
        label = ann["label"]
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            problems.append(
                f"{who}: label {label!r} is a {type(label).__name__}, expected a non-negative "
                "int (0-based class index)"
            )
        elif label < 0:
            problems.append(f"{who}: label {int(label)} is negative; expected a 0-based class")
    if "keypoint" in ann:
        kp = ann["keypoint"]
        if not isinstance(kp, np.ndarray):
            problems.append(f"{who}: keypoint is a {type(kp).__name__}, expected a NumPy array")
        elif kp.ndim != 4:
            problems.append(
                f"{who}: keypoint has shape {kp.shape} ({kp.ndim}-D); expected 4-D "
                "M x T x V x C (persons, frames, joints, xyz)"
            )
        elif kp.shape[-1] == 2:
            problems.append(
                f"{who}: keypoint has shape {kp.shape}: 2-D keypoints (x, y); the models need "
                "3-D x, y, z skeletons (C = 3), as NTU RGB+D's Kinect data provides"
            )
        elif kp.shape[-1] != 3:
            problems.append(f"{who}: keypoint has shape {kp.shape}; expected C = 3 (x, y, z)")
        elif kp.shape[0] < 1 or kp.shape[1] < 1 or kp.shape[2] < 1:
            problems.append(f"{who}: keypoint has shape {kp.shape}: no persons/frames/joints")
        elif not np.issubdtype(kp.dtype, np.floating):
            problems.append(f"{who}: keypoint dtype {kp.dtype}, expected floating point")
        elif "total_frames" in ann and ann["total_frames"] != kp.shape[1]:
            problems.append(
                f"{who}: total_frames = {ann['total_frames']!r} but keypoint has "
                f"{kp.shape[1]} frames (shape {kp.shape})"
            )
    return problems


def check_annotations(annotations: Sequence[object]) -> list[str]:
    """All problems of a list of annotation dicts (per sample, plus consistency across samples)."""
    problems: list[str] = []
    joints: Counter[int] = Counter()
    for index, ann in enumerate(annotations):
        sample_problems = _sample_problems(index, ann)
        problems.extend(sample_problems)
        if not sample_problems:
            joints[ann["keypoint"].shape[2]] += 1
    if len(joints) > 1:
        problems.append(
            f"samples disagree on the number of joints V: {dict(joints)} (count of samples per V)"
        )
    names = Counter(a.get("frame_dir") for a in annotations if isinstance(a, dict))
    dupes = [n for n, c in names.items() if c > 1 and n is not None]
    if dupes:
        problems.append(f"{len(dupes)} duplicated frame_dir(s), e.g. {dupes[:3]}")
    return problems


def _raise_problems(path: Path, problems: list[str]) -> None:
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    tail = f"\n  ... and {more} more" if more else ""
    raise DatasetError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(shown) + tail)


def load_annotations(path: str | Path, split: str | None = None) -> list[dict]:
    """Load and validate the annotation dicts of either pickle format.

    ``split`` selects a subset of a PYSKL file (e.g. ``'xsub_val'``) and must be None for an
    MMAction2 0.x list. Raises `DatasetError` naming the file and each offending sample.
    """
    path = Path(path)
    annotations = _select_split(safe_load(path), path, split)
    if not annotations:
        raise DatasetError(f"{path}: no samples" + (f" in split {split!r}" if split else ""))
    problems = check_annotations(annotations)
    if problems:
        _raise_problems(path, problems)
    return annotations


# --------------------------------------------------------------------------------------------
# The ragged in-memory set
# --------------------------------------------------------------------------------------------


class SkeletonSet:
    """A subset held as one ragged array; sample i is ``frames[offsets[i]:offsets[i+1]]``.

    ``frames`` is float32 ``(sum T, M, V, C)`` (frame-major so that one index picks a whole frame
    of a sample); ``offsets`` int64 ``(N + 1,)``; ``labels`` int64 ``(N,)``; ``names`` the
    frame_dirs; ``lengths`` int64 ``(N,)``.

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
        self, frames: Any, offsets: Any, labels: Any, names: list[str], source: str = ""
    ) -> None:
        """Build from a ``(sum T, M, V, C)`` frames array (copied into storage order if needed)."""
        self._init(_to_storage_order(frames), offsets, labels, names, source)

    @classmethod
    def from_storage(
        cls, storage: Any, offsets: Any, labels: Any, names: list[str], source: str = ""
    ) -> SkeletonSet:
        """Wrap an array already in storage order ``(sum T, V, M, C)`` without copying it."""
        obj = cls.__new__(cls)
        obj._init(storage, offsets, labels, names, source)
        return obj

    def _init(self, storage: Any, offsets: Any, labels: Any, names: list[str], source: str) -> None:
        self.storage = storage
        self.offsets = offsets
        self.labels = labels
        self.names = list(names)
        self.source = source
        where = source or "SkeletonSet"
        host = _to_numpy(offsets).astype(np.int64, copy=False)
        if host.ndim != 1 or host.shape[0] != len(self.names) + 1 or host[0] != 0:
            raise DatasetError(
                f"{where}: offsets must be (N + 1,) starting at 0 for N = {len(self.names)} "
                f"samples; got shape {host.shape}"
            )
        if storage.ndim != 4:
            raise DatasetError(f"{where}: frames must be 4-D (sum T, M, V, C)")
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

    def __repr__(self) -> str:
        return (
            f"SkeletonSet({len(self)} samples, {self.storage.shape[0]} frames, "
            f"M={self.num_persons}, V={self.num_joints}, C={self.num_channels}, "
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
        """max label + 1 (labels are 0-based class indices)."""
        return int(_to_numpy(self.labels).max()) + 1 if len(self) else 0

    @property
    def num_persons(self) -> int:
        return int(self.storage.shape[2])

    @property
    def num_joints(self) -> int:
        return int(self.storage.shape[1])

    @property
    def num_channels(self) -> int:
        return int(self.storage.shape[3])

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
        return SkeletonSet.from_storage(storage, offsets, labels, self.names, self.source)

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
        return SkeletonSet.from_storage(out, new_offsets, labels, names, self.source)

    @classmethod
    def from_annotations(
        cls,
        annotations: list[dict],
        *,
        num_persons: int | None = 2,
        source: str = "",
        consume: bool = False,
        validate: bool = True,
    ) -> SkeletonSet:
        """Concatenate validated annotation dicts into one ragged float32 array.

        ``num_persons``: like the reference's FormatGCNInput, samples with fewer persons are
        zero-padded and extra persons beyond it are dropped (the reference keeps the first 2);
        None keeps the largest M in the set. ``consume=True`` removes each keypoint array from
        its dict right after copying, so the peak memory stays about one copy of the data (the
        target array is allocated lazily by the OS and filled as the sources are freed).
        """
        if not annotations:
            raise DatasetError(f"{source or 'annotations'}: no samples")
        problems = check_annotations(annotations) if validate else []
        if problems:
            _raise_problems(Path(source or "annotations"), problems)
        shapes = [a["keypoint"].shape for a in annotations]
        m_out = num_persons if num_persons is not None else max(s[0] for s in shapes)
        v, c = shapes[0][2], shapes[0][3]
        lengths = np.fromiter((s[1] for s in shapes), dtype=np.int64, count=len(shapes))
        offsets = np.zeros(len(shapes) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        storage = np.empty((int(offsets[-1]), v, m_out, c), dtype=np.float32)
        labels = np.empty(len(shapes), dtype=np.int64)
        names: list[str] = []
        for i, ann in enumerate(annotations):
            kp = ann.pop("keypoint") if consume else ann["keypoint"]
            m = min(kp.shape[0], m_out)
            block = storage[offsets[i] : offsets[i + 1]]
            block[:, :, :m] = kp[:m].transpose(1, 2, 0, 3)  # M T V C -> T V M C (casts to f32)
            if m < m_out:
                block[:, :, m:] = 0.0
            del kp
            if consume and i % 256 == 255:
                _release_freed_memory()
            labels[i] = int(ann["label"])
            names.append(str(ann["frame_dir"]))
        if consume:
            _release_freed_memory()
        return cls.from_storage(storage, offsets, labels, names, source)

    @classmethod
    def from_file(
        cls, path: str | Path, split: str | None = None, *, num_persons: int | None = 2
    ) -> SkeletonSet:
        """Load a pickle of either format (``split`` for PYSKL files) into a ragged set."""
        annotations = load_annotations(path, split)
        return cls.from_annotations(
            annotations, num_persons=num_persons, source=str(path), consume=True, validate=False
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


# --------------------------------------------------------------------------------------------
# `skelact validate`
# --------------------------------------------------------------------------------------------


@dataclass
class ValidationReport:
    """What `validate_file` found: summary numbers, or the list of problems."""

    path: str
    split: str | None
    format: str = "unknown"
    problems: list[str] = field(default_factory=list)
    num_samples: int = 0
    num_classes: int = 0
    frames_min: int = 0
    frames_median: float = 0.0
    frames_max: int = 0
    persons: dict[int, int] = field(default_factory=dict)  # M -> number of samples
    joints: int = 0
    channels: int = 0
    nan_count: int = 0
    samples_with_nan: int = 0
    label_counts: dict[int, int] = field(default_factory=dict)
    missing_labels: list[int] = field(default_factory=list)  # gaps in 0..max label

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_file(path: str | Path, split: str | None = None) -> ValidationReport:
    """Check a pickle of either format and summarise it; never raises for bad data.

    Problems (unreadable file, unsafe pickle, wrong structure, bad samples, NaNs) are collected in
    ``report.problems``; an empty list means the file can be trained on.
    """
    path = Path(path)
    report = ValidationReport(path=str(path), split=split)
    try:
        obj = safe_load(path)
        report.format = "mmaction (list)" if isinstance(obj, list) else "pyskl (split dict)"
        annotations = _select_split(obj, path, split)
    except (FileNotFoundError, DatasetError) as exc:
        report.problems.append(str(exc))
        return report
    if not annotations:
        report.problems.append(f"{path}: no samples")
        return report
    report.problems.extend(check_annotations(annotations))
    good = [a for i, a in enumerate(annotations) if not _sample_problems(i, a)]
    report.num_samples = len(annotations)
    if not good:
        return report
    frames = np.array([a["keypoint"].shape[1] for a in good])
    report.frames_min, report.frames_max = int(frames.min()), int(frames.max())
    report.frames_median = float(np.median(frames))
    report.persons = dict(sorted(Counter(int(a["keypoint"].shape[0]) for a in good).items()))
    report.joints = int(good[0]["keypoint"].shape[2])
    report.channels = int(good[0]["keypoint"].shape[3])
    for a in good:
        nans = int(np.isnan(a["keypoint"]).sum())
        report.nan_count += nans
        report.samples_with_nan += nans > 0
    labels = Counter(int(a["label"]) for a in good)
    report.label_counts = dict(sorted(labels.items()))
    report.num_classes = max(labels) + 1
    report.missing_labels = [k for k in range(report.num_classes) if k not in labels]
    if report.nan_count:
        report.problems.append(
            f"{path}: {report.nan_count} NaN value(s) in {report.samples_with_nan} sample(s)"
        )
    return report
