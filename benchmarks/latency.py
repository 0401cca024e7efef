"""Deployment latency on the CPU: batch-1 inference and `skelact stream` windows/s end to end.

For every model: batch-1 latency p50/p99 of PyTorch eager, ``torch.compile`` and ONNX Runtime
(the exported file, parity-checked by the exporter), measured in interleaved rounds so that a
change in machine load hits all three alike; then the windows/s of the stream predictor at
stride 1 (and 4) over a JSON-lines stream of frames, end to end: JSON parsing, body selection
and pre-normalisation per window, val sampling, ONNX Runtime. Weights are random (latency does
not depend on them). The header prints the CPU model, its AVX/FMA flags and the load average:
figures taken on a loaded machine are upper bounds; a quiet run needs a load average well
below the core count.

    python benchmarks/latency.py                       # all models, all backends
    python benchmarks/latency.py --models hcn --reps 300 --no-compile --json out.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from skelact.deploy.export import check_input, export_onnx
from skelact.deploy.runtime import OnnxModel, session_options
from skelact.deploy.stream import json_frames, stream
from skelact.layouts import NTU25
from skelact.models import MODEL_NAMES, build_model
from skelact.models.checkpoint import save_own_checkpoint

NUM_JOINTS = NTU25.num_joints

REFERENCE_FILE = (
    Path(__file__).resolve().parents[2]
    / "shared/reference/ntu_prep/raw/S007C003P002R002A024.skeleton"
)


def cpu_description() -> str:
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
    except OSError:
        pass
    simd = sorted(f for f in flags if f.startswith(("avx", "fma", "amx")) or f in ("asimd", "sve"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{model}; {cores} usable cores; SIMD: {' '.join(simd) or 'none'}; load avg {load}"


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.asarray(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def timed(fn, x, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - start)
    return out


def synthetic_stream(frames: int) -> list[str]:
    """JSON lines of a real recording (tiled to ``frames``), or random walks without one."""
    if REFERENCE_FILE.is_file():
        from skelact.data.skeleton_file import read_skeleton

        bodies = read_skeleton(REFERENCE_FILE)
    else:
        steps = np.random.default_rng(0).normal(0, 0.01, (2, 100, NUM_JOINTS, 3))
        bodies = np.cumsum(steps, axis=1) + 1.0
    lines = []
    for t in range(frames):
        frame = bodies[:, t % bodies.shape[1]]
        present = [b for b in range(frame.shape[0]) if frame[b].any()]
        lines.append(json.dumps({"bodies": [{"joints": frame[b].tolist()} for b in present]}))
    return lines


def windows_per_s(model, lines: list[str], window: int, stride: int) -> float:
    def fail(exc):
        raise exc

    start = time.perf_counter()
    count = sum(1 for _ in stream(json_frames(io.StringIO("\n".join(lines)), "bench", fail),
                                  model, window=window, stride=stride))  # fmt: skip
    return count / (time.perf_counter() - start)


def bench_model(name: str, args, workdir: Path) -> dict:
    torch.manual_seed(0)
    net = build_model(name).eval()
    ckpt = workdir / f"{name}.pt"
    save_own_checkpoint(net, ckpt)
    onnx_path = workdir / f"{name}.onnx"
    export = export_onnx(ckpt, onnx_path)
    ort_model = OnnxModel(onnx_path, args.threads)
    shape = (1, 3, export.clip_len, NUM_JOINTS, 2)
    x_np = check_input(shape)
    x = torch.from_numpy(x_np)

    def eager(inp):
        with torch.no_grad():
            net(inp)

    backends = {"eager": (eager, x), "ort": (ort_model.logits, x_np)}
    compile_note = ""
    if args.compile:
        try:
            compiled = torch.compile(net)
            with torch.no_grad():
                t0 = time.perf_counter()
                compiled(x)
                compile_note = f"compiled in {time.perf_counter() - t0:.0f} s"

            def run_compiled(inp):
                with torch.no_grad():
                    compiled(inp)

            backends["compile"] = (run_compiled, x)
        except Exception as exc:  # the benchmark reports a failing compiler, it does not stop
            compile_note = f"torch.compile failed: {type(exc).__name__}"
    for fn, inp in backends.values():
        timed(fn, inp, args.warmup)
    times: dict[str, list[float]] = {k: [] for k in backends}
    rounds = 5
    for _ in range(rounds):  # interleaved, so load changes affect every backend alike
        for key, (fn, inp) in backends.items():
            times[key] += timed(fn, inp, max(1, args.reps // rounds))
    row = {"model": name, "parity_rel_error": export.parity_rel_error, "note": compile_note}
    for key, values in times.items():
        row[f"{key}_p50_ms"], row[f"{key}_p99_ms"] = percentiles(values)
    lines = synthetic_stream(args.stream_frames)
    for stride in (1, 4):
        row[f"stream_s{stride}_windows_per_s"] = windows_per_s(ort_model, lines, 64, stride)
    return row


def table_row(r: dict) -> str:
    cells = [
        f"{r[f'{k}_p50_ms']:.2f} / {r[f'{k}_p99_ms']:.2f}" if f"{k}_p50_ms" in r else "n/a"
        for k in ("eager", "compile", "ort")
    ]
    ratio = r["eager_p50_ms"] / r["ort_p50_ms"]
    s1, s4 = r["stream_s1_windows_per_s"], r["stream_s4_windows_per_s"]
    return (
        f"| {r['model']} | {' | '.join(cells)} | {ratio:.2f}x | {s1:.1f} | {s4:.1f} "
        f"({4 * s4:.0f}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--reps", type=int, default=200, help="Timed calls per backend.")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="Default: all usable cores.")
    parser.add_argument("--stream-frames", type=int, default=300, help="Frames streamed.")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()
    threads = args.threads or session_options().intra_op_num_threads
    torch.set_num_threads(threads)
    print(f"CPU: {cpu_description()}")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {threads} threads "
          f"(torch and ORT), window 64 frames, stream of {args.stream_frames} frames")  # fmt: skip
    print("\n| model | eager p50 / p99 ms | compile p50 / p99 ms | ORT p50 / p99 ms "
          "| eager / ORT (p50) | stream windows/s, stride 1 | stride 4 (= frames/s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:  # one row as soon as it is measured (a slow model can be cut)
            rows.append(bench_model(name, args, Path(tmp)))
            print(table_row(rows[-1]), flush=True)
    notes = [f"{r['model']}: {r['note']}" for r in rows if r["note"]]
    if notes:
        print("torch.compile: " + "; ".join(notes))
    print(
        "targets: ORT p50 <= eager p50; stride 1 >= 30 windows/s (dgcn: stride 4 >= 7.5 "
        "windows/s, i.e. 30 frames/s)"
    )
    print(f"\nafter the run: load avg {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_description(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
