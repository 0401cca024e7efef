"""Benchmark ``skelact preprocess``: speed against the reference, and bounded memory at scale.

Prints (nothing is asserted; the numbers go to the README):

1. the 30 reference raw files (8.5 MB), NTU 60, both benchmarks written, one worker:
   * wall time of the whole command in a fresh process (interpreter start and imports included),
     best and median of several runs, against the reference's 3.8 s, and the speed-up;
   * in-process throughput (files/s, MB/s of raw text) of the stage itself;
2. a synthetic NTU 60 folder of ``--files`` files (default 5,000; copies of the reference files
   under valid, distinct sample names, hard links when possible), processed with all workers:
   files/s, MB/s and the peak RSS of the main process and of the whole process tree (sampled),
   measured at two sizes so that the growth per file can be extrapolated to NTU 60 (56,880).

Usage: ``python benchmarks/preprocess.py [--files 5000] [--repeat 5] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SKELACT_SHARED", REPO.parent / "shared"))
RAW = SHARED / "reference" / "ntu_prep" / "raw"
REFERENCE_SECONDS = 3.8  # reference, 30 files, one process (shared/reference/README.md)
NTU60_FILES = 56_880


def _cli(raw: Path, out: Path, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "skelact", "preprocess", "--dataset", "ntu60",
        "--raw-dir", str(raw), "--out-dir", str(out), "--workers", str(workers), "--quiet",
    ]  # fmt: skip


def bench_reference_files(repeat: int, tmp: Path) -> None:
    from skelact.data.preprocess import PreprocessSettings, preprocess

    files = sorted(RAW.glob("*.skeleton"))
    size = sum(p.stat().st_size for p in files)
    print(f"== reference files: {len(files)} files, {size / 1e6:.2f} MB, NTU 60, xsub + xview")
    walls = []
    for i in range(repeat):
        out = tmp / f"ref-{i}"
        t0 = time.perf_counter()
        subprocess.run(_cli(RAW, out, 1), check=True)
        walls.append(time.perf_counter() - t0)
        shutil.rmtree(out)
    best, median = min(walls), statistics.median(walls)
    print(
        f"command wall time, 1 worker, process start included: best {best:.3f} s, "
        f"median {median:.3f} s (reference {REFERENCE_SECONDS} s) -> "
        f"speed-up {REFERENCE_SECONDS / best:.1f}x best, {REFERENCE_SECONDS / median:.1f}x median"
    )
    t0 = time.perf_counter()
    imports = "import skelact.cli, skelact.data.preprocess"
    subprocess.run([sys.executable, "-c", imports], check=True)
    print(f"  of which interpreter start + imports: {time.perf_counter() - t0:.3f} s")

    stage = []
    for i in range(repeat):
        out = tmp / f"stage-{i}"
        t0 = time.perf_counter()
        preprocess(PreprocessSettings("ntu60", RAW, out, workers=1))
        stage.append(time.perf_counter() - t0)
        shutil.rmtree(out)
    best = min(stage)
    print(
        f"stage in-process, 1 worker: best {best * 1e3:.0f} ms = {len(files) / best:.0f} files/s, "
        f"{size / best / 1e6:.1f} MB/s (reference {size / REFERENCE_SECONDS / 1e6:.1f} MB/s; "
        f"target >= 30x = {30 * size / REFERENCE_SECONDS / 1e6:.0f} MB/s)"
    )


def make_synthetic(raw: Path, count: int) -> int:
    """``count`` valid NTU 60 names (none on the missing list) linked to the reference files."""
    from skelact.data import ntu

    raw.mkdir(parents=True)
    sources = sorted(RAW.glob("*.skeleton"))
    missing = ntu.missing_samples("ntu60")
    names = (
        ntu.SampleName(s, c, p, r, a).name
        for a, s, c, p, r in itertools.product(
            range(1, 61), range(1, 18), range(1, 4), range(1, 41), range(1, 3)
        )
    )
    size = made = 0
    for name in names:
        if made == count:
            break
        if name in missing:
            continue
        src = sources[made % len(sources)]
        dst = raw / f"{name}.skeleton"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        size += src.stat().st_size
        made += 1
    return size


def _run_sampled(cmd: list[str]) -> tuple[float, float, float]:
    """Run ``cmd``; return (seconds, peak RSS of the main process, peak RSS of the tree) in MB."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd)
    peak_main = peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_main, peak_tree
        while not done.is_set():
            try:
                main = proc.memory_info().rss
                tree = main + sum(c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                main = tree = 0
            peak_main, peak_tree = max(peak_main, main), max(peak_tree, tree)
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    code = proc.wait()
    done.set()
    thread.join()
    if code != 0:
        raise SystemExit(f"{cmd} failed with exit code {code}")
    return time.perf_counter() - t0, peak_main / 2**20, peak_tree / 2**20


def bench_scale(count: int, tmp: Path) -> None:
    workers = len(os.sched_getaffinity(0))
    print(f"== synthetic NTU 60 folders, all {workers} workers, xsub + xview written")
    results = []
    for n in (count // 5, count):
        raw = tmp / f"raw-{n}"
        size = make_synthetic(raw, n)
        out = tmp / f"out-{n}"
        seconds, main_mb, tree_mb = _run_sampled(_cli(raw, out, workers))
        written = sum(p.stat().st_size for p in out.rglob("*.pkl"))
        print(
            f"{n:>6} files, {size / 1e6:7.0f} MB raw: {seconds:6.1f} s, "
            f"{n / seconds:5.0f} files/s, "
            f"{size / seconds / 1e6:5.1f} MB/s; peak RSS main {main_mb:5.0f} MB, "
            f"all processes {tree_mb:5.0f} MB; {written / 1e6:.0f} MB of pickles"
        )
        results.append((n, main_mb, tree_mb))
        shutil.rmtree(out)
        shutil.rmtree(raw)
    (n0, m0, t0), (n1, m1, t1) = results
    slope_main = max(0.0, (m1 - m0) / (n1 - n0))
    slope_tree = max(0.0, (t1 - t0) / (n1 - n0))
    print(
        f"growth {slope_main * 1e3:.2f} kB/file (main), {slope_tree * 1e3:.2f} kB/file (tree) -> "
        f"extrapolated peak for NTU 60 ({NTU60_FILES} files): main "
        f"{m1 + slope_main * (NTU60_FILES - n1):.0f} MB, all processes "
        f"{t1 + slope_tree * (NTU60_FILES - n1):.0f} MB (bound: 2048 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000, help="synthetic folder size")
    parser.add_argument("--repeat", type=int, default=5, help="runs on the reference files")
    parser.add_argument("--skip-scale", action="store_true", help="only the reference files")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="skelact-bench-") as tmp:
        bench_reference_files(args.repeat, Path(tmp))
        if not args.skip_scale:
            bench_scale(args.files, Path(tmp))


if __name__ == "__main__":
    main()
