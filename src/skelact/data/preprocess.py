"""The ``preprocess`` stage: a folder of raw NTU ``.skeleton`` files -> per-benchmark pickles.

Design, and why:

* every file is read, parsed and normalised **once**, whatever the number of benchmarks (the
  reference does it once per benchmark split); the normalised sample is pickled once and the same
  bytes are appended to every output that contains it;
* files are processed by a pool of worker processes in a bounded window of ordered tasks, so the
  output order (sorted by sample name) does not depend on ``workers`` and memory stays flat;
* outputs are streamed: each pickle file is a list written opcode by opcode (protocol 3: its memo
  indices are explicit, so independently pickled items can be concatenated), which
  ``pickle.load`` reads back as an ordinary list of dicts. Nothing ever holds all samples;
* outputs go to temporary files that are renamed only once everything succeeded, so a failure
  leaves no partial output behind.
"""

from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
import os
import pickle
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from skelact.atomic import atomic_write_text
from skelact.data import ntu
from skelact.data.prenorm import normalise_bodies
from skelact.data.skeleton_file import SkeletonFormatError, parse_skeleton
from skelact.progress import file_progress

IMG_SHAPE = (1080, 1920)  # what the reference writes; kept for drop-in compatibility
FORMATS = ("mmaction", "pyskl")
REPORT_NAME = "preprocess_report.json"
_PROTOCOL = 3  # no framing and explicit memo indices: items can be concatenated safely


class PreprocessError(ValueError):
    """A user-facing problem with the input (bad file, bad option); the message says which."""


@dataclass
class PreprocessSettings:
    """Everything the stage needs; the CLI and the tests build the same object."""

    dataset: str
    raw_dir: Path
    out_dir: Path
    benchmarks: tuple[str, ...] | None = None  # None: all benchmarks of the dataset
    format: Literal["mmaction", "pyskl"] = "mmaction"
    workers: int | None = None  # None: all usable cores
    on_error: Literal["fail", "skip"] = "fail"
    missing_list: Path | None = None  # extra samples to skip, on top of the dataset's list
    default_missing_list: bool = True
    progress: bool = False  # rich progress bar (the CLI enables it on a terminal)


@dataclass
class PreprocessResult:
    """What was written and what was left out, also saved as ``preprocess_report.json``."""

    dataset: str
    format: str
    benchmarks: list[str]
    outputs: dict[str, str]
    counts: dict[str, int]  # samples per output split, e.g. {'xsub/train': 40091, ...}
    files_found: int
    samples_written: int
    empty_samples: list[str]
    skipped_missing_list: int
    skipped_outside_dataset: list[str]
    skipped_bad: list[dict[str, str]]
    ignored_other_files: int
    bytes_read: int
    workers: int
    elapsed_s: float
    report_path: str = ""
    max_frames: int = 0
    frames_total: int = 0

    @property
    def files_per_s(self) -> float:
        return self.files_found / self.elapsed_s if self.elapsed_s > 0 else float("inf")


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


def load_sample(path: str | Path) -> dict[str, Any]:
    """One raw ``.skeleton`` file through exactly the preprocessing path -> an annotation dict.

    The label comes from the file name when it is an NTU sample name, else it is -1 (so that
    ``skelact predict`` works on any file name).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SkeletonFormatError(path, None, f"cannot read file: {exc.strerror or exc}") from exc
    keypoint = normalise_bodies(parse_skeleton(data, path))
    stem = path.name[: -len(".skeleton")] if path.name.endswith(".skeleton") else path.stem
    try:
        label = ntu.parse_sample_name(stem).label
    except ValueError:
        label = -1
    return annotation(stem, label, keypoint)


# --------------------------------------------------------------------------- workers


def _process_chunk(tasks: list[tuple[int, str, str, int]]) -> list[tuple]:
    """Worker: parse + normalise + pickle each file. Returns only bytes and small numbers."""
    out = []
    for index, path, name, label in tasks:
        try:
            data = Path(path).read_bytes()
            keypoint = normalise_bodies(parse_skeleton(data, path))
        except SkeletonFormatError as exc:
            out.append((index, None, str(exc), 0, 0, False))
            continue
        except OSError as exc:
            out.append(
                (index, None, f"{path}: cannot read file: {exc.strerror or exc}", 0, 0, False)
            )
            continue
        body = pickle.dumps(annotation(name, label, keypoint), protocol=_PROTOCOL)[2:-1]
        empty = not keypoint.any()
        out.append((index, body, "", len(data), keypoint.shape[1], empty))
    return out


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _open_pool(workers: int):
    """A worker pool, or None for in-process work.

    Created before any other thread (the progress bar) starts, because forking a process that
    runs threads is unsafe. ``fork`` starts fastest; with torch loaded (OpenMP thread pools) the
    safer ``forkserver`` is used instead.
    """
    if workers <= 1:
        return None
    methods = multiprocessing.get_all_start_methods()
    if "torch" in sys.modules and "forkserver" in methods:
        method = "forkserver"
    else:
        method = "fork" if "fork" in methods else None
    return multiprocessing.get_context(method).Pool(workers)


def _run_tasks(tasks: list[tuple[int, str, str, int]], pool, workers: int) -> Iterator[tuple]:
    """Results in task order, with a bounded number of chunks in flight (flat memory)."""
    chunk = max(1, min(16, len(tasks) // (workers * 4) or 1))
    if pool is None:
        for part in _chunks(tasks, chunk):
            yield from _process_chunk(part)
        return
    pending: collections.deque = collections.deque()
    parts = _chunks(tasks, chunk)
    for part in parts:
        pending.append(pool.apply_async(_process_chunk, (part,)))
        if len(pending) >= 3 * workers:
            break
    while pending:
        results = pending.popleft().get()
        for part in parts:
            pending.append(pool.apply_async(_process_chunk, (part,)))
            break
        yield from results


# --------------------------------------------------------------------------- outputs


class _PickleListWriter:
    """Streams a pickled list (optionally as the 'annotations' value of a dict) to a temp file."""

    def __init__(self, final: Path, wrap_dict_key: str | None = None) -> None:
        self.final = final
        self.tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        final.parent.mkdir(parents=True, exist_ok=True)
        self.file: BinaryIO = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish/abort
        self.wrap = wrap_dict_key
        self.count = 0
        self.file.write(pickle.PROTO + bytes([_PROTOCOL]))
        if wrap_dict_key is not None:
            self.file.write(pickle.EMPTY_DICT + _body(wrap_dict_key))
        self.file.write(pickle.EMPTY_LIST)

    def append(self, item_body: bytes) -> None:
        self.file.write(item_body)
        self.file.write(pickle.APPEND)
        self.count += 1

    def finish(self, extra_items: dict[str, Any] | None = None) -> None:
        if self.wrap is not None:
            self.file.write(pickle.SETITEM)
            for key, value in (extra_items or {}).items():
                self.file.write(_body(key) + _body(value) + pickle.SETITEM)
        self.file.write(pickle.STOP)
        self.file.close()

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (or already gone): leave it
        path.rmdir()


def _body(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=_PROTOCOL)[2:-1]


# --------------------------------------------------------------------------- stage


def _list_raw_dir(raw_dir: Path) -> tuple[list[str], int]:
    """Sorted ``*.skeleton`` file names and the number of other entries."""
    if not raw_dir.exists():
        raise PreprocessError(f"raw directory {raw_dir} does not exist")
    if not raw_dir.is_dir():
        raise PreprocessError(f"raw directory {raw_dir} is not a directory")
    try:
        with os.scandir(raw_dir) as entries:
            names, other = [], 0
            for entry in entries:
                if entry.name.endswith(".skeleton") and entry.is_file():
                    names.append(entry.name)
                else:
                    other += 1
    except OSError as exc:
        raise PreprocessError(
            f"cannot read raw directory {raw_dir}: {exc.strerror or exc}"
        ) from exc
    return sorted(names), other


def resolve_benchmarks(dataset: str, benchmarks: Iterable[str] | None) -> list[str]:
    """Canonical, de-duplicated benchmark names (aliases such as ``xsetup`` accepted)."""
    spec = ntu.dataset_spec(dataset)
    if not benchmarks:
        return list(spec.benchmarks)
    out: list[str] = []
    for b in benchmarks:
        name = ntu.canonical_benchmark(dataset, b)
        if name not in out:
            out.append(name)
    return out


def preprocess(settings: PreprocessSettings) -> PreprocessResult:
    """Run the stage; raises :class:`PreprocessError` on bad input (with ``on_error='fail'``).

    With ``workers > 1`` and torch already imported, workers start through ``forkserver``, which
    re-imports the calling script: call this from under ``if __name__ == "__main__":`` in a
    script (the ``skelact`` command does), or pass ``workers=1``.
    """
    t0 = time.perf_counter()
    try:
        spec = ntu.dataset_spec(settings.dataset)
        benchmarks = resolve_benchmarks(settings.dataset, settings.benchmarks)
    except ValueError as exc:
        raise PreprocessError(str(exc)) from None
    if settings.format not in FORMATS:
        raise PreprocessError(f"unknown format {settings.format!r}; choose from {FORMATS}")
    if settings.on_error not in ("fail", "skip"):
        raise PreprocessError(f"on_error must be 'fail' or 'skip', got {settings.on_error!r}")
    skip_bad = settings.on_error == "skip"
    raw_dir, out_dir = Path(settings.raw_dir), Path(settings.out_dir)

    missing: set[str] = (
        set(ntu.missing_samples(spec.name)) if settings.default_missing_list else set()
    )
    if settings.missing_list is not None:
        try:
            missing |= ntu.read_sample_list(settings.missing_list)
        except ValueError as exc:
            raise PreprocessError(str(exc)) from None

    files, ignored = _list_raw_dir(raw_dir)
    if not files:
        raise PreprocessError(
            f"no .skeleton files in {raw_dir} ({ignored} other entries); is it the raw folder?"
        )
    skipped_bad: list[dict[str, str]] = []
    outside: list[str] = []
    n_missing = 0
    tasks: list[tuple[int, str, str, int]] = []
    splits: list[list[str]] = []  # per task: output keys such as 'xsub/train'
    for file_name in files:
        stem = file_name[: -len(".skeleton")]
        try:
            sample = ntu.parse_sample_name(stem)
        except ValueError as exc:
            message = f"{raw_dir / file_name}: {exc}"
            if not skip_bad:
                raise PreprocessError(message) from None
            skipped_bad.append({"file": file_name, "reason": str(exc)})
            continue
        if stem in missing:
            n_missing += 1
            continue
        if not spec.contains(sample):
            outside.append(stem)
            continue
        tasks.append((len(tasks), str(raw_dir / file_name), stem, sample.label))
        splits.append([f"{b}/{ntu.split_of(sample, spec.name, b)}" for b in benchmarks])

    keys = [f"{b}/{p}" for b in benchmarks for p in ntu.SPLITS]
    workers = settings.workers or len(os.sched_getaffinity(0))
    workers = max(1, min(workers, len(tasks) or 1))
    # folders this run creates, removed again (when empty) if it fails: no partial output
    new_dirs = [d for d in (out_dir, *(out_dir / b for b in benchmarks)) if not d.exists()]
    out_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, _PickleListWriter] = {}
    split_names: dict[str, list[str]] = {k: [] for k in keys}
    empty: list[str] = []
    bytes_read = frames_total = max_frames = written = 0
    pool = _open_pool(workers)  # before the progress bar's thread exists
    progress = file_progress("preprocess") if settings.progress else None
    try:
        if settings.format == "mmaction":
            for key in keys:
                writers[key] = _PickleListWriter(out_dir / f"{key}.pkl")
        else:
            writers["all"] = _PickleListWriter(
                out_dir / f"{spec.name}_3danno.pkl", wrap_dict_key="annotations"
            )
        task_id = progress.add_task("files", total=len(tasks)) if progress else None
        if progress:
            progress.start()
        for index, body, error, nbytes, frames, is_empty in _run_tasks(tasks, pool, workers):
            if progress:
                progress.advance(task_id)
            name = tasks[index][2]
            if body is None:
                if not skip_bad:
                    raise PreprocessError(error)
                skipped_bad.append({"file": f"{name}.skeleton", "reason": error})
                continue
            bytes_read += nbytes
            written += 1
            frames_total += frames
            max_frames = max(max_frames, frames)
            if is_empty:
                empty.append(name)
            for key in splits[index]:
                split_names[key].append(name)
                if settings.format == "mmaction":
                    writers[key].append(body)
            if settings.format == "pyskl":
                writers["all"].append(body)
        if progress:
            progress.stop()
            progress = None
        if settings.format == "pyskl":
            pyskl_split = {k.replace("/", "_"): v for k, v in split_names.items()}
            writers["all"].finish({"split": pyskl_split})
        else:
            for writer in writers.values():
                writer.finish()
    except BaseException:
        if progress:
            progress.stop()
        for writer in writers.values():
            writer.abort()
        for folder in reversed(new_dirs):
            _remove_if_empty(folder)
        raise
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    outputs = {}
    for key, writer in writers.items():
        os.replace(writer.tmp, writer.final)
        outputs[key] = str(writer.final)

    result = PreprocessResult(
        dataset=spec.name,
        format=settings.format,
        benchmarks=benchmarks,
        outputs=outputs,
        counts={k: len(v) for k, v in split_names.items()},
        files_found=len(files),
        samples_written=written,
        empty_samples=empty,
        skipped_missing_list=n_missing,
        skipped_outside_dataset=outside,
        skipped_bad=skipped_bad,
        ignored_other_files=ignored,
        bytes_read=bytes_read,
        workers=workers,
        elapsed_s=0.0,
        max_frames=max_frames,
        frames_total=frames_total,
    )
    result.elapsed_s = time.perf_counter() - t0
    report_path = out_dir / REPORT_NAME
    result.report_path = str(report_path)
    payload = asdict(result)
    payload["raw_dir"] = str(raw_dir)
    payload["num_empty_samples"] = len(empty)
    payload["num_skipped_bad"] = len(skipped_bad)
    payload["files_per_s"] = round(result.files_per_s, 2)
    atomic_write_text(report_path, json.dumps(payload, indent=2) + "\n")
    return result


def main_summary(result: PreprocessResult) -> str:
    """A few human-readable lines for the CLI."""
    lines = [
        f"{result.dataset}: {result.samples_written} samples from {result.files_found} "
        f".skeleton files in {result.elapsed_s:.1f} s ({result.files_per_s:.0f} files/s, "
        f"{result.bytes_read / max(result.elapsed_s, 1e-9) / 1e6:.0f} MB/s, "
        f"{result.workers} workers)",
        "  " + ", ".join(f"{k}: {v}" for k, v in result.counts.items()),
    ]
    if result.empty_samples:
        lines.append(f"  {len(result.empty_samples)} samples have no body (kept as all-zero)")
    if result.skipped_missing_list:
        lines.append(
            f"  {result.skipped_missing_list} samples on the missing-skeleton list skipped"
        )
    if result.skipped_outside_dataset:
        lines.append(
            f"  {len(result.skipped_outside_dataset)} files outside {result.dataset} "
            "(setup/action out of range) skipped"
        )
    if result.ignored_other_files:
        lines.append(f"  {result.ignored_other_files} other (non-.skeleton) entries ignored")
    if result.skipped_bad:
        lines.append(f"  {len(result.skipped_bad)} bad files SKIPPED (see {result.report_path})")
    lines.append("  outputs: " + ", ".join(result.outputs.values()))
    return "\n".join(lines)
