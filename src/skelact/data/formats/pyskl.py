"""PYSKL / MMAction2 skeleton pickles: the 1.x dict ``{'split', 'annotations'}`` and the 0.x list.

An annotation is a dict with ``frame_dir`` (the clip name), ``label`` (class index),
``total_frames``, ``keypoint`` (M x T x V x C, C = 2 or 3, float16 or float32), and optionally
``keypoint_score`` (M x T x V) and ``img_shape`` (height, width). ``split`` maps split names
to lists of clip names; PYSKL names them ``<benchmark>_train`` / ``<benchmark>_val``
(``xsub_train``, ``xsub_val``, ``xview_train``, ...) or just ``train`` / ``val``.

Which split a clip gets: the reader looks for pairs ``<prefix>_train`` + ``<prefix>_val`` (and
``train`` + ``val``, prefix ``''``). With ``split=None`` there must be exactly one pair (a file
holding several benchmarks, such as PYSKL's ``ntu60_3danno.pkl``, needs ``split='xsub'``);
clips of the chosen pair get ``'train'`` / ``'val'``, other clips are not read. A 0.x list has
no splits: its clips get split None.

Files are read with :func:`skelact.data.safe_pickle.safe_load` (containers and NumPy arrays
only; a pickle that asks for anything else is refused, never run). Writing streams the
annotations into a temporary file that is renamed into place when complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from skelact.data.formats import Clip, Dropped, FormatError
from skelact.data.pickle_stream import PickleListWriter
from skelact.data.prep_parse import pickle_body
from skelact.data.safe_pickle import DatasetError, safe_load
from skelact.layouts import Layout

__all__ = ["PysklWriter", "annotation", "read_clips", "split_pairs", "write_pyskl"]

_FLOAT16_MAX = float(np.finfo(np.float16).max)


def split_pairs(splits: dict[str, Any]) -> list[str]:
    """Prefixes ``p`` with both ``p_train`` and ``p_val`` (``''`` for ``train`` + ``val``)."""
    keys = {k for k in splits if isinstance(k, str)}
    prefixes = []
    if {"train", "val"} <= keys:
        prefixes.append("")
    for key in sorted(keys):
        if key.endswith("_train") and f"{key[: -len('_train')]}_val" in keys:
            prefixes.append(key[: -len("_train")])
    return prefixes


def _load(src: Path) -> Any:
    try:
        return safe_load(src)
    except DatasetError as exc:
        raise FormatError(str(exc)) from None


def _choose_split(src: Path, splits: Any, split: str | None) -> dict[str, str]:
    """Clip name -> 'train' / 'val' for the chosen pair."""
    if not isinstance(splits, dict):
        raise FormatError(f"{src}: 'split' is {type(splits).__name__}, not a dict of name lists")
    pairs = split_pairs(splits)
    shown = ", ".join(repr(p) for p in pairs) or "none"
    if split is None:
        if len(pairs) != 1:
            raise FormatError(
                f"{src}: {len(pairs)} <prefix>_train/<prefix>_val split pairs ({shown}) in "
                f"{sorted(map(str, splits))}; choose one with split=PREFIX"
            )
        split = pairs[0]
    elif split not in pairs:
        raise FormatError(f"{src}: no split pair {split!r}; the file has: {shown}")
    keys = ("train", "val") if split == "" else (f"{split}_train", f"{split}_val")
    which: dict[str, str] = {}
    for key, part in zip(keys, ("train", "val"), strict=True):
        names = splits[key]
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise FormatError(f"{src}: split {key!r} is not a list of clip names")
        for name in names:
            if which.get(name, part) != part:
                raise FormatError(f"{src}: clip {name!r} is in both {keys[0]} and {keys[1]}")
            which[name] = part
    return which


def read_clips(src: Path, layout: Layout, *, split: str | None = None) -> Iterator[Clip | Dropped]:
    """The clips of a PYSKL / MMAction2 pickle (see the module docstring for ``split``).

    Coordinates and scores come back as float32 (float16 files are converted). A malformed
    annotation, a joint count other than the layout's, or non-finite values give a
    :class:`Dropped`; a file that is not such a pickle raises :class:`FormatError`.
    """
    src = Path(src)
    annotations, which = _contents(src, _load(src), split)
    seen: set[str] = set()
    for i, ann in enumerate(annotations):
        clip = _clip(ann, i, layout, src)
        if which is not None and isinstance(ann, dict) and ann.get("frame_dir") == clip.name:
            if clip.name not in which:
                continue  # not part of the chosen benchmark
            if isinstance(clip, Clip):
                clip.split = which[clip.name]
        if clip.name in seen:
            clip = Dropped(clip.name, f"{src}: clip {clip.name!r} appears twice")
        seen.add(clip.name)
        yield clip
    if which is not None:
        for name in sorted(set(which) - seen):
            yield Dropped(name, f"{src}: {name!r} is in split {which[name]} but has no annotation")


def _contents(src: Path, data: Any, split: str | None) -> tuple[list, dict[str, str] | None]:
    """The annotation list, and the split of each clip of the chosen pair (None: a 0.x list)."""
    which: dict[str, str] | None = None
    if isinstance(data, dict):
        missing = {"split", "annotations"} - set(data)
        if missing:
            raise FormatError(
                f"{src}: a PYSKL dict needs 'split' and 'annotations'; missing {sorted(missing)}"
            )
        which = _choose_split(src, data["split"], split)
        annotations = data["annotations"]
    elif isinstance(data, list):
        if split is not None:
            raise FormatError(f"{src}: an MMAction2 0.x list has no splits; cannot take {split!r}")
        annotations = data
    else:
        raise FormatError(
            f"{src}: holds a {type(data).__name__}, not a PYSKL dict or an MMAction2 list"
        )
    if not isinstance(annotations, list):
        raise FormatError(f"{src}: 'annotations' is {type(annotations).__name__}, not a list")
    return annotations, which


def _clip(ann: Any, i: int, layout: Layout, src: Path) -> Clip | Dropped:
    if not isinstance(ann, dict):
        return Dropped(f"annotation {i}", f"{src}: annotation {i} is not a dict")
    name = ann.get("frame_dir")
    if not isinstance(name, str) or not name:
        return Dropped(f"annotation {i}", f"{src}: annotation {i} has no frame_dir name")
    where = f"{src}: clip {name}"
    kp = ann.get("keypoint")
    if not isinstance(kp, np.ndarray) or kp.dtype.kind != "f":
        return Dropped(name, f"{where}: 'keypoint' is missing or not a float array")
    if kp.ndim != 4 or kp.shape[-1] not in (2, 3):
        return Dropped(name, f"{where}: keypoint shape {kp.shape} is not M x T x V x (2|3)")
    m, t, v, _ = kp.shape
    if v != layout.num_joints:
        return Dropped(name, f"{where}: {v} joints, layout {layout.name} has {layout.num_joints}")
    frames = ann.get("total_frames", t)
    if isinstance(frames, bool) or not isinstance(frames, int | np.integer) or frames != t:
        return Dropped(name, f"{where}: total_frames {frames!r} but keypoint has {t} frames")
    keypoint = kp.astype(np.float32)
    if not np.isfinite(keypoint).all():
        return Dropped(name, f"{where}: non-finite coordinates")
    score = ann.get("keypoint_score")
    if score is not None:
        if not isinstance(score, np.ndarray) or score.dtype.kind != "f":
            return Dropped(name, f"{where}: 'keypoint_score' is not a float array")
        if score.shape != (m, t, v):
            return Dropped(name, f"{where}: keypoint_score shape {score.shape}, not {(m, t, v)}")
        score = score.astype(np.float32)
        if not np.isfinite(score).all():
            return Dropped(name, f"{where}: non-finite scores")
    label = ann.get("label")
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            return Dropped(name, f"{where}: label {label!r} is not a class index")
        label = int(label)
    img_shape = ann.get("img_shape")
    if img_shape is not None:
        if (
            not isinstance(img_shape, tuple | list)
            or len(img_shape) != 2
            or not all(isinstance(x, int | np.integer) and x > 0 for x in img_shape)
        ):
            return Dropped(name, f"{where}: img_shape {img_shape!r} is not (height, width)")
        img_shape = (int(img_shape[0]), int(img_shape[1]))
    return Clip(name, keypoint, score, label, None, img_shape)


def annotation(clip: Clip, float16: bool = False) -> dict[str, Any]:
    """A clip as a PYSKL annotation dict (refused with its name when it cannot be one)."""
    where = f"clip {clip.name}"
    if isinstance(clip.label, bool) or not isinstance(clip.label, int | np.integer):
        raise FormatError(f"{where}: label {clip.label!r} is not a class index")
    dtype = np.float16 if float16 else np.float32
    ann: dict[str, Any] = {
        "frame_dir": clip.name,
        "label": int(clip.label),
        "total_frames": clip.num_frames,
        "keypoint": _cast(clip.keypoint, dtype, where, "coordinates"),
    }
    if clip.score is not None:
        ann["keypoint_score"] = _cast(clip.score, dtype, where, "scores")
    if clip.img_shape is not None:
        ann["img_shape"] = (int(clip.img_shape[0]), int(clip.img_shape[1]))
    return ann


def _cast(values: np.ndarray, dtype: type, where: str, what: str) -> np.ndarray:
    values = np.asarray(values)
    if not np.isfinite(values).all():
        raise FormatError(f"{where}: non-finite {what}")
    if dtype is np.float16 and np.abs(values).max(initial=0.0) > _FLOAT16_MAX:
        raise FormatError(f"{where}: {what} beyond float16's range ({_FLOAT16_MAX:g})")
    return np.ascontiguousarray(values, dtype=dtype)


class PysklWriter:
    """Streams clips into a PYSKL dict pickle: ``append`` each, ``finish(splits)``, ``commit``."""

    def __init__(self, final: Path, *, float16: bool = False) -> None:
        self.final = Path(final)
        self.float16 = float16
        self.names: set[str] = set()
        self._out = PickleListWriter(self.final, wrap_dict_key="annotations")

    def append(self, clip: Clip) -> None:
        if clip.name in self.names:
            raise FormatError(f"{self.final}: clip {clip.name!r} given twice")
        self._out.append(pickle_body(annotation(clip, self.float16)))
        self.names.add(clip.name)

    def finish(self, splits: dict[str, list[str]]) -> None:
        """Close the pickle with ``splits``; every name in them must have been appended."""
        for key, names in splits.items():
            unknown = [n for n in names if n not in self.names]
            if unknown:
                raise FormatError(
                    f"{self.final}: split {key!r} names {len(unknown)} clips that were not "
                    f"written (e.g. {unknown[0]!r})"
                )
        self._out.finish({"split": {k: list(v) for k, v in splits.items()}})

    def commit(self) -> None:
        self._out.commit()

    def abort(self) -> None:
        self._out.abort()


def write_pyskl(
    clips: Iterable[Clip], path: Path, splits: dict[str, list[str]], *, float16: bool = False
) -> None:
    """Write clips (int labels) as a PYSKL ``{'split', 'annotations'}`` pickle, atomically.

    ``float16`` stores coordinates and scores as float16, as PYSKL's own 2-D files do (about
    3 significant digits: 1 px steps above 1024 px).
    """
    writer = PysklWriter(Path(path), float16=float16)
    try:
        for clip in clips:
            writer.append(clip)
        writer.finish(splits)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
