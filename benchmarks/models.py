"""Train-step (and inference) throughput of skelact's recognizers against the reference, same run.

Each implementation runs in its own worker process, and the workers take turns: round after
round, every implementation times a few steps of the same model on the same input, so load on
a shared machine hits them alike; the figure is the median over rounds. Implementations:

* ``reference``: benchmarks/reference_models.py, a plain transcription of SkelAct's five
  recognizers (tests/test_benchmark_reference.py proves it reproduces the reference logits);
  PYSKL's ST-GCN++ and CTR-GCN have none (their reference is PYSKL's logits, checked in
  tests/test_pyskl_models.py), so their rows time ``skelact`` (and ``baseline``) only;
* ``skelact``: this checkout's models (``build_model``), in a process set up as ``skelact
  train`` sets its own (glibc keeps freed memory: ``keep_training_memory``) and with the layout
  autotune applied as training applies it (``--no-tune`` keeps the build default);
* ``baseline``: with ``--baseline-rev REV``, the models of another revision of this
  repository, checked out with ``git worktree`` into a temporary folder and imported from it
  (a model that revision lacks is left out of its row).

A train step is forward, cross-entropy, backward and an Adam step on random input already in
memory, float32, batch 32 by default, 2 torch threads. Every figure is printed beside the CPU it
was measured on (model name, the AVX2/AVX-512 flags, what ATen dispatches to, and any cap on
the instruction sets: ``--isa avx2`` times AVX2 code paths on an AVX-512 CPU).

    python benchmarks/models.py                              # all seven, reference vs skelact
    python benchmarks/models.py --models hcn dgcn --baseline-rev main --rounds 7
    python benchmarks/models.py --infer --json

On a shared or busy machine the figures are noisy (the ratios less so, as the implementations
alternate): for figures to quote, run on a quiet machine with ``--rounds 9`` or more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
IMPLS = ("reference", "skelact", "baseline")
#: The models benchmarks/reference_models.py transcribes (SkelAct's five).
REFERENCE_MODELS = ("tscnn", "hcn", "hcnb", "tacnn", "dgcn")
#: One step per round for these (the slowest per step: DGCN; the GCNs at T = 100).
ONE_STEP = ("dgcn", "stgcnpp", "ctrgcn")
#: What ``--isa avx2`` sets for every worker: ATen's kernels, oneDNN's and MKL's, all at AVX2.
AVX2_CAPS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"}  # fmt: skip
ISA_CAPS = tuple(AVX2_CAPS)  # the variables reported beside a figure when set


# --- the CPU ----------------------------------------------------------------------------------


def cpu_description() -> dict:
    """Model name, vector flags and ATen's dispatch level of this CPU (Linux /proc/cpuinfo)."""
    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name == "unknown CPU":
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    import torch

    return {
        "model_name": name,
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "isa_caps": {k: os.environ[k] for k in ISA_CAPS if os.environ.get(k)},
        "logical_cpus": os.cpu_count(),
    }


def cpu_line(cpu: dict) -> str:
    vec = ", ".join(
        f for f, on in (("AVX2", cpu["avx2"]), ("AVX-512", cpu["avx512"])) if on
    )  # fmt: skip
    caps = "".join(f"; {k}={v}" for k, v in cpu.get("isa_caps", {}).items())
    return (
        f"{cpu['model_name']} ({vec or 'no AVX2'}; ATen {cpu['aten_capability']}{caps}; "
        f"{cpu['logical_cpus']} logical CPUs)"
    )


# --- the worker: one implementation, timed on request -----------------------------------------


class Worker:
    """Builds a model of one implementation and times steps of it (runs in a subprocess)."""

    def __init__(self, impl: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.impl = impl
        self.step = None

    def setup(self, name: str, batch: int, mode: str, tune: bool) -> dict:
        import torch
        import torch.nn.functional as F

        from skelact.layouts import NTU25
        from skelact.models import build_model, default_clip_len

        torch.manual_seed(0)
        if self.impl != "reference":  # as `skelact train` sets its process up
            try:
                from skelact.models.tuning import keep_training_memory
            except ImportError:  # a checkout from before the setting
                pass
            else:
                keep_training_memory()
        if self.impl == "reference":
            sys.path.insert(0, str(HERE))
            from reference_models import build_reference

            model = build_reference(name)
        else:
            model = build_model(name)
        clip_len = default_clip_len(name)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, clip_len, NTU25.num_joints, 2, generator=gen)
        y = torch.randint(0, 60, (batch,), generator=gen)
        layout = "nchw" if self.impl == "reference" else _layout_of(model)
        if self.impl == "skelact" and tune:
            try:
                from skelact.models.tuning import tune_memory_format
            except ImportError:  # a checkout without the autotune
                pass
            else:
                layout = tune_memory_format(model, tuple(x.shape))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

        if mode == "train":
            model.train()

            def step() -> None:
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                optimizer.step()

        else:
            model.eval()

            def step() -> None:
                with torch.no_grad():
                    model(x)

        step()  # warm-up: first-call allocations and oneDNN primitive creation
        step()
        self.step = step
        return {"layout": layout}

    def time(self, steps: int, clock: str) -> float:
        """Seconds per step: wall time, or this process's CPU time (``clock='cpu'``), which on
        a shared machine leaves out the time spent waiting for other processes."""
        now = time.process_time if clock == "cpu" else time.perf_counter
        start = now()
        for _ in range(steps):
            self.step()
        return (now() - start) / steps


def _layout_of(model) -> str:
    """The layout of the spatial conv weights (a baseline checkout may lack skelact's helper)."""
    import torch

    convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)
    ]
    last = torch.channels_last
    if convs and all(c.weight.is_contiguous(memory_format=last) for c in convs):
        return "channels_last"
    return "nchw"


def serve(impl: str, threads: int) -> None:
    """Worker loop: one JSON request per stdin line, one JSON answer per stdout line."""
    worker = Worker(impl, threads)
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "setup":
            try:
                answer = worker.setup(req["model"], req["batch"], req["mode"], req["tune"])
            except ValueError as exc:  # a model this revision does not register
                answer = {"missing": str(exc)}
        elif req["op"] == "time":
            answer = {"seconds": worker.time(req["steps"], req["clock"])}
        elif req["op"] == "cpu":
            answer = cpu_description()
        else:
            return
        out.write(json.dumps(answer) + "\n")
        out.flush()


class WorkerProcess:
    """The coordinator's handle on one worker subprocess importing skelact from ``src``."""

    def __init__(self, impl: str, src: Path, threads: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(src))
        # Thread pools sized like the run's torch threads, and nothing else in the worker.
        env.setdefault("OMP_NUM_THREADS", str(threads))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", impl]
        cmd += ["--threads", str(threads)]
        self.impl = impl
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.impl} worker died (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


# --- checkouts --------------------------------------------------------------------------------


def baseline_checkout(rev: str, tmp: Path) -> Path:
    """A detached ``git worktree`` of ``rev`` under ``tmp``; returns its ``src`` folder."""
    path = tmp / "baseline"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(path), rev],
        check=True,
    )
    return path / "src"


def remove_checkout(tmp: Path) -> None:
    path = tmp / "baseline"
    if path.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False
        )


# --- the run ----------------------------------------------------------------------------------


def measure(workers: dict[str, WorkerProcess], args, name: str, mode: str) -> dict:
    """Interleaved rounds of every implementation that has ``name``: samples/s medians and
    ratios (to the reference, where it transcribes the model)."""
    layouts = {}
    for impl, w in workers.items():
        if impl == "reference" and name not in REFERENCE_MODELS:
            continue
        answer = w.ask(op="setup", model=name, batch=args.batch, mode=mode, tune=not args.no_tune)
        if "layout" in answer:
            layouts[impl] = answer["layout"]
    workers = {impl: w for impl, w in workers.items() if impl in layouts}
    steps = args.steps or (1 if name in ONE_STEP else 3)
    times: dict[str, list[float]] = {impl: [] for impl in workers}
    order = list(workers)
    for r in range(args.rounds):
        # Alternate who goes first, so neither side always runs right after the other's.
        for impl in order if r % 2 == 0 else order[::-1]:
            times[impl].append(
                workers[impl].ask(op="time", steps=steps, clock=args.clock)["seconds"]
            )
    rates = {impl: args.batch / statistics.median(t) for impl, t in times.items()}
    spread = {
        impl: (args.batch / max(t), args.batch / min(t)) for impl, t in times.items()
    }  # fmt: skip
    base = rates.get("reference")
    return {
        "model": name,
        "mode": mode,
        "batch": args.batch,
        "threads": args.threads,
        "rounds": args.rounds,
        "clock": args.clock,
        "steps_per_round": steps,
        "samples_per_s": rates,
        "range_per_s": spread,
        "layouts": layouts,
        "vs_reference": {k: v / base for k, v in rates.items()} if base else {},
    }


def main(argv: list[str] | None = None) -> None:
    from skelact.models import MODEL_NAMES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--impls", nargs="+", default=["reference", "skelact"], choices=IMPLS)
    parser.add_argument("--baseline-rev", help="Also time this git revision's models.")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per worker.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds (median).")
    parser.add_argument(
        "--steps", type=int, help="Steps per round (default 3; dgcn, stgcnpp, ctrgcn 1)."
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time per step (a work estimate on a busy machine; with several "
        "threads it counts their sum, so compare ratios, not rates)",
    )
    parser.add_argument("--infer", action="store_true", help="Also time inference (no grad).")
    parser.add_argument("--no-tune", action="store_true", help="skelact: skip the autotune.")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    parser.add_argument(
        "--isa",
        choices=("native", "avx2"),
        default="native",
        help="avx2: cap ATen, oneDNN and MKL at AVX2 in every worker (AVX2 code paths on an "
        "AVX-512 CPU; the CPU line then names the caps)",
    )
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return serve(args.worker, args.threads)

    if args.isa == "avx2":
        os.environ.update(AVX2_CAPS)  # inherited by every worker started below
    impls = [i for i in args.impls if i != "baseline"]
    if args.baseline_rev:
        impls.append("baseline")
    tmp = Path(tempfile.mkdtemp(prefix="skelact-bench-"))
    workers: dict[str, WorkerProcess] = {}
    try:
        here_src = REPO / "src"
        for impl in impls:
            src = baseline_checkout(args.baseline_rev, tmp) if impl == "baseline" else here_src
            workers[impl] = WorkerProcess(impl, src, args.threads)
        cpu = next(iter(workers.values())).ask(op="cpu")
        where = cpu_line(cpu)
        load = os.getloadavg()[0]
        if not args.json:
            print(f"CPU: {where}; load average {load:.2f} at start")
            print(
                f"batch {args.batch}, {args.threads} torch threads, float32, median of "
                f"{args.rounds} interleaved rounds, {args.clock} clock; "
                f"baseline = {args.baseline_rev or '-'}"
            )
        rows = []
        for name in args.models:
            for mode in ("train", "infer") if args.infer else ("train",):
                row = measure(workers, args, name, mode)
                row["cpu"] = where
                rows.append(row)
                if not args.json:
                    cells = "  ".join(
                        f"{impl} {rate:7.1f}/s"
                        + (f" (x{row['vs_reference'][impl]:.2f})" if row["vs_reference"] else "")
                        for impl, rate in row["samples_per_s"].items()
                    )
                    print(f"{name:<7} {mode:<5} {cells}   [{cpu['model_name']}]", flush=True)
        if args.json:
            print(json.dumps({"cpu": cpu, "load_avg_start": load, "rows": rows}, indent=2))
        elif load > (cpu["logical_cpus"] or 1) * 0.5:
            print(
                "note: the machine was busy; for quotable figures rerun on a quiet machine "
                "with --rounds 9 (ratios are interleaved, absolute rates are not)"
            )
    finally:
        for worker in workers.values():
            worker.close()
        remove_checkout(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
