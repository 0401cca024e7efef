"""Preprocessing, step 2 of 3: read, parse and normalise every planned file, in order.

Files are processed in-process (one worker) or by a pool of worker processes in a bounded window
of ordered chunks, so the output order (sorted by sample name) does not depend on ``workers`` and
memory stays flat. A worker returns only the pickled sample and a few numbers, or, for the
outputs that are not pickled lists (``mode`` ``'array'``: the pre-normalised keypoints for the
npz; ``'raw'``: the selected bodies as read, for PYSKL's own convention), the keypoint array.
"""

from __future__ import annotations

import collections
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from skelact.data.prenorm import normalise_bodies, select_bodies
from skelact.data.prep_plan import Task
from skelact.data.skeleton_file import SkeletonFormatError, line_of_largest, parse_skeleton
from skelact.memory import keep_freed_memory

IMG_SHAPE = (1080, 1920)  # what the reference writes; kept for drop-in compatibility
PROTOCOL = 3  # no framing and explicit memo indices: pickled items can be concatenated safely

#: What a worker returns per sample: the pickled annotation, or the (normalised / raw) keypoints.
Mode = Literal["pickle", "array", "raw"]


class Parsed(NamedTuple):
    """A worker's answer for one task: the pickled annotation, or the reason it is bad."""

    index: int
    body: bytes | None
    error: str
    nbytes: int
    frames: int
    empty: bool
    keypoint: np.ndarray | None = None  # modes 'array' and 'raw' (body is then b"")


def annotation(name: str, label: int, keypoint: np.ndarray) -> dict[str, Any]:
    """One sample in the MMAction2 / PYSKL layout, keys in the reference's order."""
    return {
        "total_frames": int(keypoint.shape[1]),
        "keypoint": keypoint,
        "frame_dir": name,
        "img_shape": IMG_SHAPE,
        "original_shape": IMG_SHAPE,
        "label": int(label),
    }


def load_keypoint(data: bytes, path: str | Path) -> np.ndarray:
    """Raw file bytes -> model-ready ``(2, T, V, C)`` float32 keypoints, all finite.

    The parser refuses non-finite text; a finite but huge coordinate (``1E+308``) can still
    overflow float32 or the normalisation's arithmetic, so the result is checked too and such a
    file is bad input, named by the line of its largest coordinate.
    """
    bodies = parse_skeleton(data, path)
    with np.errstate(over="ignore", invalid="ignore"):
        keypoint = normalise_bodies(bodies)
    if not np.isfinite(keypoint).all():
        line, value = line_of_largest(data, path)
        raise SkeletonFormatError(
            path, line, f"coordinate {value:g} is too large: pre-normalisation overflows"
        )
    return keypoint


def load_raw_keypoint(data: bytes, path: str | Path) -> np.ndarray:
    """Raw file bytes -> the two selected bodies as read (camera space, metres), float32.

    The bodies and their order are those the pre-normalisation starts from; a second body that
    is all zero (a one-person sample) is dropped, so one-person samples have M = 1, as in PYSKL.
    """
    bodies = parse_skeleton(data, path)
    with np.errstate(over="ignore"):
        keypoint = select_bodies(bodies)
    if not np.isfinite(keypoint).all():
        line, value = line_of_largest(data, path)
        raise SkeletonFormatError(path, line, f"coordinate {value:g} is too large for float32")
    return keypoint if keypoint[1:].any() else keypoint[:1]


def pickle_body(obj: Any) -> bytes:
    """``obj`` pickled without the protocol header and STOP: an item of a streamed list."""
    return pickle.dumps(obj, protocol=PROTOCOL)[2:-1]


_MALLOC_TUNED = False


def tune_malloc() -> None:
    """Keep freed memory of this process for reuse (glibc only; once per process).

    Why: parsing one file makes a few dozen temporary arrays of 100 KB - 1 MB. By default
    glibc maps each from the kernel and unmaps it when freed, or trims the heap top, so every
    file pays thousands of page faults again -- measured as a third of the parse time. Raising
    the mmap and trim thresholds keeps these pages; the process grows by about one file's
    working set (a few MB) once, not per file.
    """
    global _MALLOC_TUNED
    if not _MALLOC_TUNED:
        _MALLOC_TUNED = True
        keep_freed_memory(mmap_threshold=16 * 2**20, trim_threshold=64 * 2**20)


def _process_chunk(tasks: list[Task], mode: Mode = "pickle") -> list[Parsed]:
    """Worker: parse + normalise + pickle each file (or return its keypoints, see `Mode`)."""
    tune_malloc()
    out = []
    for index, path, name, label in tasks:
        try:
            data = Path(path).read_bytes()
            keypoint = load_raw_keypoint(data, path) if mode == "raw" else load_keypoint(data, path)
        except SkeletonFormatError as exc:
            out.append(Parsed(index, None, str(exc), 0, 0, False))
            continue
        except OSError as exc:
            reason = f"{path}: cannot read file: {exc.strerror or exc}"
            out.append(Parsed(index, None, reason, 0, 0, False))
            continue
        frames, empty = keypoint.shape[1], not keypoint.any()
        if mode == "pickle":
            body = pickle_body(annotation(name, label, keypoint))
            out.append(Parsed(index, body, "", len(data), frames, empty))
        else:
            out.append(Parsed(index, b"", "", len(data), frames, empty, keypoint))
    return out


def open_pool(workers: int):
    """A worker pool, or None for in-process work.

    Created before any other thread (the progress bar) starts, because forking a process that
    runs threads is unsafe. ``fork`` starts fastest; with torch loaded (OpenMP thread pools) the
    safer ``forkserver`` is used instead.
    """
    if workers <= 1:
        return None
    import multiprocessing  # only here: one worker (the common CLI case) starts faster

    methods = multiprocessing.get_all_start_methods()
    if "torch" in sys.modules and "forkserver" in methods:
        method = "forkserver"
    else:
        method = "fork" if "fork" in methods else None
    return multiprocessing.get_context(method).Pool(workers)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_tasks(tasks: list[Task], pool, workers: int, mode: Mode = "pickle") -> Iterator[Parsed]:
    """Results in task order, with a bounded number of chunks in flight (flat memory)."""
    chunk = max(1, min(16, len(tasks) // (workers * 4) or 1))
    if pool is None:
        for part in _chunks(tasks, chunk):
            yield from _process_chunk(part, mode)
        return
    pending: collections.deque = collections.deque()
    parts = _chunks(tasks, chunk)
    for part in parts:
        pending.append(pool.apply_async(_process_chunk, (part, mode)))
        if len(pending) >= 3 * workers:
            break
    while pending:
        results = pending.popleft().get()
        for part in parts:
            pending.append(pool.apply_async(_process_chunk, (part, mode)))
            break
        yield from results
