"""The ``preprocess`` stage: a folder of raw NTU ``.skeleton`` files -> per-benchmark pickles.

Output formats (``format``): ``mmaction`` (default), ``<bench>/{train,val}.pkl`` of
pre-normalised samples; ``pyskl``, one ``<dataset>_3danno.pkl`` with the same samples and a
``split`` dict (``xsub_train``, ...); with ``raw=True`` that file instead holds PYSKL's own
convention: the two selected bodies as read from the files (camera space, metres, not
pre-normalised; M = 1 for one-person samples; float16 with ``float16=True``), for PYSKL's own
``PreNormalize3D``; ``npz``, one ``<bench>.npz`` per benchmark in the CTR-GCN / SGN layout
(pre-normalised samples zero-padded to 300 frames and 2 persons, one-hot labels over the
dataset's classes), as CTR-GCN's own NTU files hold.

Three steps, one module each: :mod:`~skelact.data.prep_plan` decides which file goes where and
checks everything that needs no sample; :mod:`~skelact.data.prep_parse` reads, parses and
normalises every file once, whatever the number of benchmarks (the reference reads each file
once per benchmark split); :mod:`~skelact.data.pickle_stream` appends the same pickled bytes to
every output that contains the sample. This module runs them as a stage:

* one writer per output folder (:func:`skelact.locking.output_lock`); temporaries left by a
  SIGKILLed run are removed first;
* all or nothing: outputs are renamed into place only once everything succeeded (signals are
  held back during the renames); on a bad file (``on_error='fail'``), SIGINT or SIGTERM the
  temporaries and the folders this run created are removed and nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from skelact.atomic import StagedText, remove_stale_temps, signals_held
from skelact.data import ntu
from skelact.data.pickle_stream import PickleListWriter
from skelact.data.prep_parse import annotation, load_keypoint, open_pool, run_tasks
from skelact.data.prep_plan import (
    FORMATS,
    Plan,
    check_splits,
    make_plan,
    resolve_benchmarks,
)
from skelact.data.raw_folder import PreprocessError
from skelact.data.skeleton_file import SkeletonFormatError
from skelact.errors import InterruptedRun
from skelact.locking import output_lock

if TYPE_CHECKING:  # imported where used: the default output never loads the formats package
    from skelact.data.formats.npz import NpzWriter
    from skelact.data.formats.pyskl import PysklWriter

    Writer = PickleListWriter | PysklWriter | NpzWriter

__all__ = [
    "FORMATS",
    "PreprocessError",
    "PreprocessResult",
    "PreprocessSettings",
    "load_sample",
    "main_summary",
    "preprocess",
    "resolve_benchmarks",
]

REPORT_NAME = "preprocess_report.json"


@dataclass
class PreprocessSettings:
    """Everything the stage needs; the CLI and the tests build the same object."""

    dataset: str
    raw_dir: Path
    out_dir: Path
    benchmarks: tuple[str, ...] | None = None  # None: all benchmarks of the dataset
    format: Literal["mmaction", "pyskl", "npz"] = "mmaction"
    raw: bool = False  # pyskl only: coordinates as read (PYSKL's convention), not pre-normalised
    float16: bool = False  # pyskl raw only: float16 coordinates, as PYSKL's files store them
    workers: int | None = None  # None: all usable cores
    on_error: Literal["fail", "skip"] = "fail"
    missing_list: Path | None = None  # extra samples to skip, on top of the dataset's list
    default_missing_list: bool = True
    progress: bool = False  # rich progress bar (the CLI enables it on a terminal)
    recursive: bool = False  # also take the .skeleton files in subfolders of raw_dir


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
    ignored_in_subfolders: int = 0

    @property
    def files_per_s(self) -> float:
        return self.files_found / self.elapsed_s if self.elapsed_s > 0 else float("inf")


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
    keypoint = load_keypoint(data, path)
    stem = path.name[: -len(".skeleton")] if path.name.endswith(".skeleton") else path.stem
    try:
        label = ntu.parse_sample_name(stem).label
    except ValueError:
        label = -1
    return annotation(stem, label, keypoint)


def preprocess(settings: PreprocessSettings) -> PreprocessResult:
    """Run the stage; raises :class:`PreprocessError` on bad input (with ``on_error='fail'``).

    With ``workers > 1`` and torch already imported, workers start through ``forkserver``, which
    re-imports the calling script: call this from under ``if __name__ == "__main__":`` in a
    script (the ``skelact`` command does), or pass ``workers=1``.
    """
    t0 = time.perf_counter()
    plan = make_plan(settings)
    out_dir = Path(settings.out_dir)
    # folders this run creates, removed again (when empty) if it fails: no partial output
    new_dirs = [d for d in (out_dir, *(out_dir / b for b in plan.benchmarks)) if not d.exists()]
    folders = (out_dir, *(out_dir / b for b in plan.benchmarks))
    try:
        with output_lock(out_dir, "preprocess"):
            for folder in folders:
                remove_stale_temps(folder)
            return _run(plan, settings, out_dir, t0)
    except BaseException:
        for folder in folders:  # this run's temps, also one a signal caught half-created
            for tmp in folder.glob(f".*.tmp-{os.getpid()}"):
                tmp.unlink(missing_ok=True)
        for folder in reversed(new_dirs):
            with contextlib.suppress(OSError):  # not empty (or already gone): leave it
                folder.rmdir()
        raise


def _writers(plan: Plan, settings: PreprocessSettings, out_dir: Path) -> dict[str, Writer]:
    """Output writers by key: a split (mmaction), a benchmark (npz) or 'all' (pyskl)."""
    if settings.format == "pyskl":
        final = out_dir / f"{plan.dataset}_3danno.pkl"
        if settings.raw:
            from skelact.data.formats.pyskl import PysklWriter

            return {"all": PysklWriter(final, float16=settings.float16)}
        return {"all": PickleListWriter(final, wrap_dict_key="annotations")}
    if settings.format == "npz":
        from skelact.data.formats.npz import NpzWriter

        classes = ntu.dataset_spec(plan.dataset).num_classes
        return {b: NpzWriter(out_dir / f"{b}.npz", num_classes=classes) for b in plan.benchmarks}
    return {key: PickleListWriter(out_dir / f"{key}.pkl") for key in plan.keys}


def _finish(writer: Writer, settings: PreprocessSettings, splits: dict[str, list[str]]) -> None:
    """Close an output: the pyskl dict gets the splits (after its annotations)."""
    if settings.format == "npz":
        writer.finish()
    elif settings.format == "pyskl":
        writer.finish(splits if settings.raw else {"split": splits})
    else:
        writer.finish(None)


def _run(plan: Plan, settings: PreprocessSettings, out_dir: Path, t0: float) -> PreprocessResult:
    """Parse every planned file into the writers; commit all outputs and the report at once."""
    workers = settings.workers or len(os.sched_getaffinity(0))
    workers = max(1, min(workers, len(plan.tasks) or 1))
    result = PreprocessResult(
        dataset=plan.dataset, format=settings.format, benchmarks=plan.benchmarks, outputs={},
        counts={}, files_found=len(plan.listing.files) + len(plan.listing.dangling),
        samples_written=0, empty_samples=[], skipped_missing_list=plan.n_missing,
        skipped_outside_dataset=plan.outside, skipped_bad=list(plan.skipped_bad),
        ignored_other_files=plan.listing.other, bytes_read=0, workers=workers, elapsed_s=0.0,
        ignored_in_subfolders=plan.listing.in_subfolders,
    )  # fmt: skip
    writers: list[Writer | StagedText] = []
    pool = open_pool(workers)  # before the progress bar's thread exists, and before the handler
    try:
        with _signals_raise() as stage:
            outputs = _writers(plan, settings, out_dir)
            writers += outputs.values()
            with _progress(settings.progress, len(plan.tasks)) as advance:
                split_names = _consume(plan, settings, result, outputs, pool, advance)
            result.counts = {k: len(v) for k, v in split_names.items()}
            check_splits(plan, result.counts)  # skipped files may have emptied one
            splits = {k.replace("/", "_"): v for k, v in split_names.items()}
            for writer in outputs.values():
                _finish(writer, settings, splits)
            result.outputs = {key: str(w.final) for key, w in outputs.items()}
            writers.append(_report_writer(out_dir, settings, result, t0))
            with signals_held():
                for writer in writers:
                    writer.commit()
                stage.committed = True
    except BaseException as exc:
        for writer in writers:
            writer.abort()
        if pool is not None and not isinstance(exc, Exception):
            pool.terminate()  # Ctrl-C: do not wait for the chunks in flight
        raise
    finally:
        if pool is not None:
            # close + join, not terminate: terminating while the pool's task thread is feeding
            # workers can deadlock it (seen under load); the few chunks in flight finish first
            pool.close()
            pool.join()
    return result


def _consume(
    plan: Plan,
    settings: PreprocessSettings,
    result: PreprocessResult,
    outputs: dict[str, Writer],
    pool: Any,
    advance: Any,
) -> dict[str, list[str]]:
    """Append every parsed sample to its outputs, in plan order; the sample names per split."""
    split_names: dict[str, list[str]] = {k: [] for k in plan.keys}
    mode = "raw" if settings.raw else "array" if settings.format == "npz" else "pickle"
    if mode != "pickle":
        from skelact.data.formats import Clip  # what the npz and PYSKL writers take
    for parsed in run_tasks(plan.tasks, pool, result.workers, mode):
        advance()
        name = plan.tasks[parsed.index].name
        if parsed.body is None:
            if settings.on_error == "fail":
                raise PreprocessError(parsed.error)
            result.skipped_bad.append({"file": f"{name}.skeleton", "reason": parsed.error})
            continue
        result.bytes_read += parsed.nbytes
        result.samples_written += 1
        result.frames_total += parsed.frames
        result.max_frames = max(result.max_frames, parsed.frames)
        if parsed.empty:
            result.empty_samples.append(name)
        label = plan.tasks[parsed.index].label
        for key in plan.outputs[parsed.index]:
            split_names[key].append(name)
            if settings.format == "mmaction":
                outputs[key].append(parsed.body)
            elif settings.format == "npz":
                bench, part = key.split("/")
                outputs[bench].append(Clip(name, parsed.keypoint, label=label, split=part))
        if settings.format == "pyskl" and settings.raw:
            outputs["all"].append(Clip(name, parsed.keypoint, label=label))
        elif settings.format == "pyskl":
            outputs["all"].append(parsed.body)
    return split_names


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Any]:
    """A files/s progress bar (rich, imported only when shown); yields its ``advance``."""
    if not enabled:
        yield lambda: None
        return
    from skelact.progress import file_progress

    progress = file_progress("preprocess")
    task_id = progress.add_task("files", total=total)
    progress.start()
    try:
        yield lambda: progress.advance(task_id)
    finally:
        progress.stop()


def _report_writer(
    out_dir: Path, settings: PreprocessSettings, result: PreprocessResult, t0: float
) -> StagedText:
    report_path = out_dir / REPORT_NAME
    result.report_path = str(report_path)
    result.elapsed_s = time.perf_counter() - t0
    payload = asdict(result)
    payload["raw_dir"] = str(settings.raw_dir)
    payload["raw"], payload["float16"] = settings.raw, settings.float16
    payload["num_empty_samples"] = len(result.empty_samples)
    payload["num_skipped_bad"] = len(result.skipped_bad)
    payload["files_per_s"] = round(result.files_per_s, 2)
    return StagedText(report_path, json.dumps(payload, indent=2) + "\n")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class _Stage:
    """Whether the outputs are in place, for the message of a late signal."""

    committed = False


@contextlib.contextmanager
def _signals_raise() -> Iterator[_Stage]:
    """SIGTERM (what ``timeout``, docker and SLURM send) raises like SIGINT does."""
    stage = _Stage()
    if not _in_main_thread():
        yield stage
        return

    def stop(signum: int, frame: object) -> None:
        done = "its outputs were complete" if stage.committed else "nothing was written"
        raise InterruptedRun(f"preprocess stopped by {signal.Signals(signum).name}; {done}", signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield stage
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    if result.ignored_in_subfolders:
        lines.append(
            f"  {result.ignored_in_subfolders} .skeleton files in subfolders were ignored; "
            "use --recursive"
        )
    if result.skipped_bad:
        lines.append(f"  {len(result.skipped_bad)} bad files SKIPPED (see {result.report_path})")
    lines.append("  outputs: " + ", ".join(result.outputs.values()))
    return "\n".join(lines)
