"""The CTR-GCN / SGN ``.npz`` file: ``x_train``/``x_test`` N x T x (M*V*C), one-hot ``y_*``.

CTR-GCN, InfoGCN, HD-GCN, BlockGCN and SkateFormer read NTU from this file. Each row of ``x`` is
one clip, zero-padded along T (CTR-GCN pads to 300 frames); the last axis is the persons'
joints' coordinates in (M, V, C) order, so ``x[n].reshape(T, M, V, C)``. ``y`` is one-hot
(N x K). The train part is split ``'train'``, the test part split ``'val'``. The file carries
no clip names (clips are named ``train_000000``, ``val_000000``, ... by position), no scores and
no image size.

Frame count: a row's frames after its last non-zero frame are padding, so a clip whose own last
frames are all zero comes back shorter; an all-zero row is dropped. C is inferred from the width
and the layout's V: C = 3 when M*V*3 divides it, else C = 2 (so a 2-D file with 3 persons reads
as 3-D with 2: such files are not written by any of the toolkits above).

Reading streams one row at a time from the zip member (stored or compressed), so a 10 GB file
needs a row's memory, and never unpickles (``allow_pickle=False``; object arrays are refused).
Writing streams too: rows go to temporary files beside the target, and the zip (uncompressed,
like ``numpy.savez``, with fixed timestamps so the same clips give the same bytes) is assembled
and renamed into place at the end.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from skelact.atomic import staged_temp
from skelact.data.formats import Clip, Dropped, FormatError
from skelact.layouts import Layout

__all__ = ["DEFAULT_MAX_FRAMES", "NpzWriter", "read_clips", "write_npz"]

#: CTR-GCN's padded length for NTU.
DEFAULT_MAX_FRAMES = 300
#: The npz parts: (x member, y member, the split their clips get, the clip-name prefix).
_PARTS = (("x_train", "y_train", "train"), ("x_test", "y_test", "val"))
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FLOATS = ("f2", "f4", "f8")


def _member(zf: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    try:
        return zf.getinfo(f"{name}.npy")
    except KeyError:
        return None


def _header(handle: BinaryIO, where: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    """Shape, dtype and Fortran order of the .npy stream ``handle`` (left at the data)."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    except ValueError as exc:
        raise FormatError(f"{where}: not a .npy array ({exc})") from None
    if dtype.hasobject:
        raise FormatError(f"{where}: holds Python objects; only numeric arrays are read")
    return shape, dtype, fortran


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    with zf.open(info) as handle:
        try:
            return np.lib.format.read_array(handle, allow_pickle=False)
        except ValueError as exc:
            raise FormatError(f"{where}: unreadable ({exc})") from None


def _labels(y: np.ndarray, where: str) -> list[int | str]:
    """Class index per row, or the reason a row is not one-hot (a str)."""
    if y.ndim != 2 or y.dtype.kind not in "fiub":
        raise FormatError(
            f"{where}: expected a one-hot N x K numeric array, got {y.dtype} of shape {y.shape}"
        )
    out: list[int | str] = []
    for i, row in enumerate(y):
        hot = np.flatnonzero(row)
        if len(hot) != 1 or row[hot[0]] != 1:
            shown = ", ".join(f"{row[k]:g} at {k}" for k in hot[:4]) or "all zero"
            out.append(f"{where} row {i} is not one-hot ({shown})")
        else:
            out.append(int(hot[0]))
    return out


def _geometry(width: int, layout: Layout, where: str) -> tuple[int, int]:
    """(M, C) from a row width M*V*C and the layout's V."""
    v = layout.num_joints
    if width % v:
        raise FormatError(
            f"{where}: rows of {width} values do not fit layout {layout.name} ({v} joints): "
            f"the width must be persons x {v} x 3 (or x 2)"
        )
    per_joint = width // v
    for c in (3, 2):
        if per_joint % c == 0:
            return per_joint // c, c
    raise FormatError(
        f"{where}: rows of {width} values = {per_joint} per joint of layout {layout.name}, which "
        "is neither persons x 3 nor persons x 2 coordinates"
    )


def read_clips(src: Path, layout: Layout) -> Iterator[Clip | Dropped]:
    """The clips of a CTR-GCN / SGN npz: its train part as split 'train', its test part 'val'.

    A whole-file problem (not an npz, a missing or mismatched ``y``, a width that does not fit
    the layout) raises :class:`FormatError`; a row that is not one-hot, non-finite or all zero
    is yielded as :class:`Dropped`.
    """
    src = Path(src)
    try:
        zf = zipfile.ZipFile(src)
    except (OSError, zipfile.BadZipFile) as exc:
        raise FormatError(f"{src}: not an npz file ({exc})") from None
    with zf:
        parts = [(x, y, split) for x, y, split in _PARTS if _member(zf, x) or _member(zf, y)]
        if not parts:
            raise FormatError(f"{src}: no x_train/y_train or x_test/y_test arrays")
        checked = []
        for x_name, y_name, split in parts:
            x_info, y_info = _member(zf, x_name), _member(zf, y_name)
            if x_info is None or y_info is None:
                raise FormatError(f"{src}: has {x_name if x_info else y_name} without its pair")
            labels = _labels(_read_small(zf, y_info, f"{src}:{y_name}"), f"{src}:{y_name}")
            with zf.open(x_info) as handle:
                shape, dtype, fortran = _header(handle, f"{src}:{x_name}")
            if len(shape) != 3 or dtype.kind != "f" or fortran:
                raise FormatError(
                    f"{src}:{x_name}: expected a C-order float N x T x (M*V*C) array, got "
                    f"{dtype} of shape {shape}"
                )
            if shape[0] != len(labels):
                raise FormatError(
                    f"{src}: {x_name} has {shape[0]} rows but {y_name} has {len(labels)}"
                )
            checked.append((x_info, shape, dtype, labels, split))
        for x_info, shape, dtype, labels, split in checked:
            yield from _rows(zf, x_info, shape, dtype, labels, split, layout, src)


def _rows(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    shape: tuple[int, ...],
    dtype: np.dtype,
    labels: list[int | str],
    split: str,
    layout: Layout,
    src: Path,
) -> Iterator[Clip | Dropped]:
    n, t, width = shape
    m, c = _geometry(width, layout, f"{src}:{info.filename[:-4]}")
    row_bytes = t * width * dtype.itemsize
    with zf.open(info) as handle:
        _header(handle, str(src))
        for i in range(n):
            name = f"{split}_{i:06d}"
            data = handle.read(row_bytes)
            if len(data) != row_bytes:
                raise FormatError(f"{src}:{info.filename}: truncated at row {i} of {n}")
            label = labels[i]
            if isinstance(label, str):
                yield Dropped(name, label)
                continue
            row = np.frombuffer(data, dtype).reshape(t, width)
            if not np.isfinite(row).all():
                yield Dropped(name, f"{src} {split} row {i}: non-finite coordinates")
                continue
            present = np.flatnonzero(row.any(axis=1))
            if len(present) == 0:
                yield Dropped(name, f"{src} {split} row {i}: every frame is zero")
                continue
            frames = int(present[-1]) + 1
            keypoint = row[:frames].reshape(frames, m, layout.num_joints, c).transpose(1, 0, 2, 3)
            keypoint = np.ascontiguousarray(keypoint, dtype=np.float32)
            yield Clip(name, keypoint, label=label, split=split)


class NpzWriter:
    """Streams clips into an npz: ``append`` each, then ``finish``, then ``commit`` (or ``abort``).

    The temporaries are ``.<name>.*.tmp-<pid>`` beside the target, so a killed run's leftovers
    are found by :func:`skelact.atomic.remove_stale_temps`.
    """

    def __init__(
        self,
        final: Path,
        num_persons: int = 2,
        max_frames: int = DEFAULT_MAX_FRAMES,
        num_classes: int | None = None,
    ) -> None:
        if num_persons < 1 or max_frames < 1:
            raise FormatError(f"{final}: num_persons and max_frames must be >= 1")
        self.final = Path(final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.num_persons, self.max_frames, self.num_classes = num_persons, max_frames, num_classes
        self.tmp = staged_temp(self.final, "npz")
        self._rows = {split: staged_temp(self.final, split) for _, _, split in _PARTS}
        self._files: dict[str, BinaryIO] = {}
        self._labels: dict[str, list[int]] = {split: [] for _, _, split in _PARTS}
        self._shape: tuple[int, int] | None = None  # (V, C) of the first clip

    def append(self, clip: Clip) -> None:
        """Add one clip (int label, split 'train' or 'val', at most num_persons/max_frames)."""
        where = f"{self.final}: clip {clip.name}"
        if clip.split not in self._rows:
            raise FormatError(f"{where}: split {clip.split!r}; the npz holds only train and val")
        if isinstance(clip.label, bool) or not isinstance(clip.label, int | np.integer):
            raise FormatError(f"{where}: label {clip.label!r} is not a class index")
        label = int(clip.label)
        if label < 0 or (self.num_classes is not None and label >= self.num_classes):
            raise FormatError(f"{where}: label {label} outside 0..{(self.num_classes or 1) - 1}")
        kp = np.asarray(clip.keypoint)
        if kp.ndim != 4 or kp.shape[-1] not in (2, 3):
            raise FormatError(f"{where}: keypoint shape {kp.shape} is not M x T x V x (2|3)")
        m, t, v, c = kp.shape
        if self._shape is None:
            self._shape = (v, c)
        elif self._shape != (v, c):
            raise FormatError(
                f"{where}: {v} joints x {c} coordinates, but earlier clips have "
                f"{self._shape[0]} x {self._shape[1]}"
            )
        if m > self.num_persons:
            raise FormatError(f"{where}: {m} persons, more than num_persons={self.num_persons}")
        if t > self.max_frames:
            raise FormatError(f"{where}: {t} frames, more than max_frames={self.max_frames}")
        if not np.isfinite(kp).all():
            raise FormatError(f"{where}: non-finite coordinates")
        row = np.zeros((self.max_frames, self.num_persons, v, c), np.float32)
        row[:t, :m] = kp.transpose(1, 0, 2, 3)
        if clip.split not in self._files:
            self._files[clip.split] = open(self._rows[clip.split], "wb")  # noqa: SIM115
        self._files[clip.split].write(row.tobytes())
        self._labels[clip.split].append(label)

    def finish(self) -> None:
        """Assemble the zip in its temporary file (nothing is in place until ``commit``)."""
        for handle in self._files.values():
            handle.close()
        if self._shape is None:
            raise FormatError(f"{self.final}: no clips to write")
        counts = [len(v) for v in self._labels.values()]
        k = self.num_classes or (1 + max(max(v) for v in self._labels.values() if v))
        width = self.num_persons * self._shape[0] * self._shape[1]
        with zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for (x_name, y_name, split), n in zip(_PARTS, counts, strict=True):
                if n == 0:
                    continue
                with self._open(zf, x_name) as out:
                    np.lib.format.write_array_header_1_0(
                        out, {"descr": "<f4", "fortran_order": False,
                              "shape": (n, self.max_frames, width)}
                    )  # fmt: skip
                    with open(self._rows[split], "rb") as rows:
                        shutil.copyfileobj(rows, out, 1 << 22)
                y = np.zeros((n, k), np.float32)
                y[np.arange(n), self._labels[split]] = 1.0
                with self._open(zf, y_name) as out:
                    np.lib.format.write_array(out, y, allow_pickle=False)
        for path in self._rows.values():
            path.unlink(missing_ok=True)

    @staticmethod
    def _open(zf: zipfile.ZipFile, name: str) -> BinaryIO:
        info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
        info.external_attr = 0o644 << 16
        return zf.open(info, "w", force_zip64=True)

    def commit(self) -> None:
        """Move the finished file into place (it has the umask's mode, like ``open``)."""
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        for handle in self._files.values():
            handle.close()
        for path in (self.tmp, *self._rows.values()):
            path.unlink(missing_ok=True)


def write_npz(
    clips: Iterable[Clip],
    path: Path,
    num_persons: int = 2,
    *,
    max_frames: int = DEFAULT_MAX_FRAMES,
    num_classes: int | None = None,
) -> None:
    """Write clips (int labels, splits 'train'/'val') as a CTR-GCN / SGN npz, atomically.

    Every row is padded with zeros to ``max_frames`` frames and ``num_persons`` persons; a clip
    with more of either is refused with its name. ``y`` has ``num_classes`` columns (default:
    the largest label + 1). Scores and image sizes are not stored: the format has no place.
    """
    writer = NpzWriter(Path(path), num_persons, max_frames, num_classes)
    try:
        for clip in clips:
            writer.append(clip)
        writer.finish()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
