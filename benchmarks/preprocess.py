"""Benchmark ``skelact preprocess`` against a baseline checkout and the reference, in one run.

A speed-up is only worth something when both sides ran on the same machine at the same time, so
this script times, interleaved, on the same ``--files`` NTU-format files (default 600: copies of
the 30 reference raw files under distinct valid NTU 60 sample names, hard links when possible):

* the working tree's ``skelact preprocess --workers 1`` as a whole command (a fresh process:
  interpreter start and imports included), both benchmarks of NTU 60 written;
* the same command of a baseline revision (``--baseline-rev``, default ``ea0a0c4``, main's first
  version), checked out with ``git worktree`` into a temporary folder and run with
  ``PYTHONPATH`` pointing at it;
* with ``--reference-script PATH``, a copy of SkelAct's own data-generation script
  (``tools/data/gen_ntu_rgbd_raw.py`` of github.com/hikvision-research/skelact, not shipped
  here) on the same files, within the same rounds (``--reference-repeat`` of them, default 1)
  so that it sees the same load; its two ``mmcv`` helpers (a progress bar and a pickle dump)
  are provided by a tiny stand-in module written at run time, so that mmcv need not be
  installed.

Each figure is printed with the CPU (model, AVX2 / AVX-512) and the load average, and the
outputs are compared (baseline and working tree byte for byte, the reference within 1e-5).
With ``--scale-files N`` it also processes N files with all workers and reports the peak memory.

Usage: ``python benchmarks/preprocess.py [--files 600] [--repeat 3] [--baseline-rev REV]
[--reference-script gen_ntu_rgbd_raw.py] [--scale-files 5000]``. For figures worth quoting run
it on an otherwise idle machine (load average well below 1 per core).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SKELACT_SHARED", REPO.parent / "shared"))
RAW = SHARED / "reference" / "ntu_prep" / "raw"
RESOURCES = REPO / "src" / "skelact" / "data" / "resources"
MISSING = RESOURCES / "NTU_RGBD_samples_with_missing_skeletons.txt"
NTU60_FILES = 56_880
SPLITS = ("xsub/train", "xsub/val", "xview/train", "xview/val")

# The two mmcv helpers the reference script calls, as a stand-in package (written at run time).
MMCV_STANDIN = """
import pickle


class ProgressBar:
    def __init__(self, task_num=0):
        pass

    def update(self, num_tasks=1):
        pass


def dump(obj, file):
    with open(file, "wb") as f:
        pickle.dump(obj, f)
"""


def cpu() -> str:
    """``model name, AVX2 yes/no, AVX-512 yes/no, N cores`` from /proc/cpuinfo."""
    model, flags = "unknown CPU", set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    yes = {True: "yes", False: "no"}
    return (
        f"{model}, AVX2 {yes['avx2' in flags]}, AVX-512 {yes['avx512f' in flags]}, "
        f"{len(os.sched_getaffinity(0))} cores"
    )


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def make_files(raw: Path, count: int) -> int:
    """``count`` valid NTU 60 names (none on the missing list) linked to the reference files."""
    raw.mkdir(parents=True)
    sources = sorted(RAW.glob("*.skeleton"))
    missing = set(MISSING.read_text().split())
    names = (
        f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}"
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


@contextlib.contextmanager
def baseline_checkout(rev: str, tmp: Path) -> Iterator[Path]:
    """A ``git worktree`` of ``rev`` in ``tmp`` (removed afterwards); yields its ``src``."""
    where = tmp / f"baseline-{rev}"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where), rev],
                   check=True)  # fmt: skip
    try:
        yield where / "src"
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)],
                       check=False)  # fmt: skip


def skelact_cmd(raw: Path, out: Path, workers: int = 1) -> list[str]:
    return [
        sys.executable, "-m", "skelact", "preprocess", "--dataset", "ntu60",
        "--raw-dir", str(raw), "--out-dir", str(out), "--workers", str(workers), "--quiet",
    ]  # fmt: skip


def reference_cmd(script: Path, raw: Path, out: Path) -> list[str]:
    return [
        sys.executable, str(script), "--data-path", f"{raw}/", "--out-folder", str(out),
        "--ignored-sample-path", str(MISSING), "--task", "ntu60",
    ]  # fmt: skip


def child_env(pythonpath: Path) -> dict[str, str]:
    """The environment of a timed command: ``pythonpath`` first, bytecode cache allowed.

    Installed packages run from compiled bytecode; a ``PYTHONDONTWRITEBYTECODE`` set in the
    calling environment would instead make every run recompile the checkout's modules
    (~0.1 s of the whole command), so it is dropped here, for every side alike.
    """
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def precompile(src: Path) -> None:
    """Write the bytecode of a checkout's modules (``__pycache__``, ignored by git) once."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True,
                   env=child_env(src), stdout=subprocess.DEVNULL)  # fmt: skip


def build_reader(src: Path) -> None:
    """Compile a checkout's one-pass reader in place if it has one and it is not built.

    A ``git worktree`` of a revision is a bare source tree: without this its compiled reader
    would silently be missing and the side would be timed on its NumPy fallback.
    """
    import sysconfig

    source = src / "skelact" / "data" / "_skeleton_fast.c"
    target = source.with_name("_skeleton_fast" + sysconfig.get_config_var("EXT_SUFFIX"))
    if not source.exists() or target.exists():
        return
    cc = sysconfig.get_config_var("CC").split()
    flags = [*sysconfig.get_config_var("CFLAGS").split(), sysconfig.get_config_var("CCSHARED")]
    subprocess.run([*cc, *flags, "-shared", f"-I{sysconfig.get_paths()['include']}",
                    str(source), "-o", str(target)], check=True)  # fmt: skip


def compiled_reader(src: Path) -> str:
    """'yes' if a checkout reads .skeleton files with its compiled reader, else why not."""
    if not (src / "skelact" / "data" / "_skeleton_fast.c").exists():
        return "none in this revision"
    probe = "from skelact.data import skeleton_file as s; print(s._skeleton_fast is not None)"
    out = subprocess.run([sys.executable, "-c", probe], env=child_env(src), check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    return "yes" if out == "True" else "NOT BUILT (NumPy fallback timed)"


def timed(cmd: list[str], pythonpath: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of ``cmd`` in a fresh process.

    The CPU time suffers less than the wall time from other jobs on a busy machine.
    """
    env = child_env(pythonpath)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _load(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        return pickle.load(f)


def same_outputs(a: Path, b: Path, exact: bool) -> str:
    """Whether two output folders hold the same samples (bytes, or keypoints within 1e-5)."""
    import numpy as np

    for split in SPLITS:
        if exact:
            if (a / f"{split}.pkl").read_bytes() != (b / f"{split}.pkl").read_bytes():
                return f"no ({split} differs)"
            continue
        left = {x["frame_dir"]: x for x in _load(a / f"{split}.pkl")}
        right = {x["frame_dir"]: x for x in _load(b / f"{split}.pkl")}
        if sorted(left) != sorted(right):
            return f"no ({split}: other samples)"
        for name, x in left.items():
            y = right[name]
            if x["label"] != y["label"] or x["keypoint"].shape != y["keypoint"].shape:
                return f"no ({name})"
            if not np.allclose(x["keypoint"], y["keypoint"], rtol=0, atol=1e-5):
                return f"no ({name}: keypoints differ)"
    return "yes" + (" (byte for byte)" if exact else " (keypoints within 1e-5)")


def compare(args: argparse.Namespace, tmp: Path) -> None:
    raw = tmp / "raw"
    size = make_files(raw, args.files)
    print(f"== {args.files} NTU-format files ({size / 1e6:.0f} MB), NTU 60, xsub + xview, "
          f"one worker, whole command (process start included)")  # fmt: skip
    print(f"   CPU: {cpu()}; {load()} at the start; both checkouts run from compiled bytecode")
    baseline = f"baseline {args.baseline_rev}"
    sides: dict[str, list[tuple[float, float]]] = {"working tree": [], baseline: []}
    references: list[tuple[float, float]] = []
    standin = tmp / "standin"
    if args.reference_script:
        (standin / "mmcv").mkdir(parents=True)
        (standin / "mmcv" / "__init__.py").write_text(MMCV_STANDIN)
    with baseline_checkout(args.baseline_rev, tmp) as base_src:
        paths = {"working tree": REPO / "src", baseline: base_src}
        for src in paths.values():
            build_reader(src)
            precompile(src)
        readers = {side: compiled_reader(src) for side, src in paths.items()}
        for i in range(args.repeat):  # interleaved: all sides see the same load
            for side, src in paths.items():
                out = tmp / f"out-{i}-{side.split()[0]}"
                sides[side].append(timed(skelact_cmd(raw, out), src))
                if i:
                    shutil.rmtree(out)
            if args.reference_script and i < args.reference_repeat:
                out = tmp / f"out-{i}-reference"
                references.append(timed(reference_cmd(args.reference_script, raw, out), standin))
                if i:
                    shutil.rmtree(out)
        identical = same_outputs(tmp / "out-0-working", tmp / "out-0-baseline", exact=True)
    reference = min(references) if references else None
    if reference is not None:
        ref_same = same_outputs(tmp / "out-0-working", tmp / "out-0-reference", exact=False)
    mine = min(sides["working tree"])
    for side, runs in sides.items():
        wall, cpu_s = min(runs)
        print(f"{side:>24}: best {wall:7.2f} s wall ({cpu_s:6.2f} s CPU), median "
              f"{statistics.median(w for w, _ in runs):7.2f} s ({args.files / wall:5.0f} files/s, "
              f"{size / wall / 1e6:5.1f} MB/s); compiled reader: {readers[side]}  "
              f"[{cpu()}]")  # fmt: skip
    base = min(sides[baseline])
    print(f"{'':>24}  working tree vs baseline: {base[0] / mine[0]:.2f}x wall, "
          f"{base[1] / mine[1]:.2f}x CPU; outputs identical: {identical}")  # fmt: skip
    if reference is not None:
        print(f"{'reference script':>24}: best {reference[0]:7.2f} s wall ({reference[1]:6.2f} s "
              f"CPU) of {len(references)}, {size / reference[0] / 1e6:.1f} MB/s, run within the "
              f"same rounds  [{cpu()}]")  # fmt: skip
        print(f"{'':>24}  working tree vs reference: {reference[0] / mine[0]:.1f}x wall, "
              f"{reference[1] / mine[1]:.1f}x CPU (goal >= 30x, stretch 50x); same samples as "
              f"the reference: {ref_same}")  # fmt: skip
        print(f"{'':>24}  baseline vs reference: {reference[0] / base[0]:.1f}x wall, "
              f"{reference[1] / base[1]:.1f}x CPU")  # fmt: skip
    else:
        print(f"{'reference script':>24}: not timed (pass --reference-script PATH to a copy of "
              "SkelAct's tools/data/gen_ntu_rgbd_raw.py)")  # fmt: skip
    print(f"   {load()} at the end (figures taken under load are noisy; quote quiet runs)")


def _run_sampled(cmd: list[str]) -> tuple[float, float, float]:
    """Run ``cmd``; return (seconds, peak RSS of the main process, peak RSS of the tree) in MB."""
    import psutil

    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env=child_env(REPO / "src"))
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
    print(f"== memory at scale: all {workers} workers, xsub + xview written  [{cpu()}]")
    results = []
    for n in (count // 5, count):
        raw = tmp / f"raw-{n}"
        size = make_files(raw, n)
        out = tmp / f"out-{n}"
        seconds, main_mb, tree_mb = _run_sampled(skelact_cmd(raw, out, workers))
        written = sum(p.stat().st_size for p in out.rglob("*.pkl"))
        print(f"{n:>6} files, {size / 1e6:7.0f} MB raw: {seconds:6.1f} s, "
              f"{n / seconds:5.0f} files/s, {size / seconds / 1e6:5.1f} MB/s; peak RSS main "
              f"{main_mb:5.0f} MB, all processes {tree_mb:5.0f} MB; "
              f"{written / 1e6:.0f} MB of pickles")  # fmt: skip
        results.append((n, main_mb, tree_mb))
        shutil.rmtree(out)
        shutil.rmtree(raw)
    (n0, m0, t0), (n1, m1, t1) = results
    slope_main = max(0.0, (m1 - m0) / (n1 - n0))
    slope_tree = max(0.0, (t1 - t0) / (n1 - n0))
    print(f"growth {slope_main * 1e3:.2f} kB/file (main), {slope_tree * 1e3:.2f} kB/file (tree) "
          f"-> extrapolated peak for NTU 60 ({NTU60_FILES} files): main "
          f"{m1 + slope_main * (NTU60_FILES - n1):.0f} MB, all processes "
          f"{t1 + slope_tree * (NTU60_FILES - n1):.0f} MB (bound: 2048 MB)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=600, help="files timed (at least 600)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per checkout")
    parser.add_argument("--baseline-rev", default="ea0a0c4", help="git revision to compare with")
    parser.add_argument("--reference-script", type=Path, help="a copy of gen_ntu_rgbd_raw.py")
    parser.add_argument("--reference-repeat", type=int, default=1,
                        help="reference runs, in the first rounds (~100 s each)")  # fmt: skip
    parser.add_argument("--scale-files", type=int, default=0, help="also measure memory at N")
    args = parser.parse_args()
    if args.files < 600:
        parser.error("--files must be at least 600 (the whole-command figure is on >= 600)")
    with tempfile.TemporaryDirectory(prefix="skelact-bench-") as tmp:
        compare(args, Path(tmp))
        if args.scale_files:
            bench_scale(args.scale_files, Path(tmp))


if __name__ == "__main__":
    main()
