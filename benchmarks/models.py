"""Throughput of the five recognizers: inference and training step, eager and torch.compile'd.

Prints one row per (model, batch size, mode): samples/s for a forward pass (eval, no grad) and
for a training step (forward, cross-entropy, backward, Adam step), float32 on the current device
(CUDA when available). Inputs are random tensors already on the device, so the figures are the
model's cost alone, not the data path's.

    python benchmarks/models.py                      # all models, batch 32 and 64, eager + compile
    python benchmarks/models.py --models hcn tacnn --batch-sizes 32 --no-compile
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from skelact.models import MODEL_NAMES, build_model, default_clip_len
from skelact.models.common import set_memory_format


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(
    step,
    batch: int,
    device: torch.device,
    warmup: int,
    min_time: float,
    min_iters: int,
    stat: str,
    clock: str = "wall",
) -> float:
    """Samples/s of ``step()``: per-call times after ``warmup`` calls, for >= min_time s and
    >= min_iters calls, summarised by their median (or their best, which on a shared, busy
    machine is the closer estimate of what a quiet one does).

    ``clock='cpu'`` times with the process's CPU time divided by the torch thread count: on a
    shared CPU it estimates the wall time of a quiet machine (time spent waiting for other
    processes is not counted); on CUDA it is meaningless, so only wall time is used there.
    """
    for _ in range(warmup):
        step()
    _sync(device)
    use_cpu = clock == "cpu" and device.type == "cpu"
    now = time.process_time if use_cpu else time.perf_counter
    scale = 1.0 / torch.get_num_threads() if use_cpu else 1.0
    times: list[float] = []
    while len(times) < min_iters or sum(times) < min_time:
        start = now()
        step()
        _sync(device)
        times.append((now() - start) * scale)
    return batch / (min(times) if stat == "best" else statistics.median(times))


def bench_model(
    name: str,
    batch: int,
    device: torch.device,
    *,
    compile_model: bool,
    contiguous: bool,
    warmup: int,
    min_time: float,
    min_iters: int,
    stat: str,
    clock: str,
) -> dict:
    torch.manual_seed(0)
    model = build_model(name).to(device)
    x = torch.randn(batch, 3, default_clip_len(name), 25, 2, device=device)
    y = torch.randint(0, 60, (batch,), device=device)
    if contiguous:
        set_memory_format(model, channels_last=False)
    net = torch.compile(model) if compile_model else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

    def infer() -> None:
        with torch.no_grad():
            net(x)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        optimizer.step()

    model.eval()
    fwd = _rate(infer, batch, device, warmup, min_time, min_iters, stat, clock)
    model.train()
    train = _rate(train_step, batch, device, warmup, min_time, min_iters, stat, clock)
    return {
        "model": name,
        "batch": batch,
        "mode": "compile" if compile_model else "eager",
        "layout": "contiguous" if contiguous else "channels_last",
        "forward_per_s": fwd,
        "train_step_per_s": train,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--no-compile", action="store_true", help="Eager mode only.")
    parser.add_argument(
        "--contiguous",
        action="store_true",
        help="Contiguous (NCHW) conv weights instead of the models' channels-last default.",
    )
    parser.add_argument("--stat", choices=("median", "best"), default="median")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time / threads (a quiet-machine estimate on a shared CPU).",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:i].")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=3.0, help="Seconds timed per figure.")
    parser.add_argument("--min-iters", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="Print JSON rows instead of a table.")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"

    modes = [False] if args.no_compile else [False, True]
    if not args.json:
        layout = "contiguous" if args.contiguous else "channels-last"
        print(
            f"device: {device} ({where}), torch {torch.__version__}, float32, {layout} weights,"
            f" {args.stat} of per-step {args.clock}-clock times"
        )
        print(f"{'model':<6} {'batch':>5} {'mode':<8} {'forward/s':>10} {'train step/s':>13}")
    rows = []
    for name in args.models:
        for batch in args.batch_sizes:
            for compiled in modes:
                row = bench_model(
                    name,
                    batch,
                    device,
                    compile_model=compiled,
                    contiguous=args.contiguous,
                    warmup=args.warmup + (2 if compiled else 0),
                    min_time=args.min_time,
                    min_iters=args.min_iters,
                    stat=args.stat,
                    clock=args.clock,
                )
                rows.append(row)
                if not args.json:
                    print(
                        f"{name:<6} {batch:>5} {row['mode']:<8} {row['forward_per_s']:>10.1f}"
                        f" {row['train_step_per_s']:>13.1f}",
                        flush=True,
                    )
    if args.json:
        print(json.dumps({"device": str(device), "where": where, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
