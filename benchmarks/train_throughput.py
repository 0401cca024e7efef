"""Training throughput at NTU-60 scale with the project's own training loop, per model and setting.

The data set is synthetic and made in memory: NTU-60 cross-subject's training size (40,091
samples; ``--samples`` for fewer) with lengths of 32-300 frames spread like NTU's (log-normal
around 75 frames, clipped), random coordinates. Each measurement builds a run with
``skelact.engine.train.setup`` (the in-memory sets in place of the pickles) and times whole
epochs of ``train_one_epoch`` -- data path, forward, loss, backward, optimizer step, the
non-finite checks -- after ``--warmup`` epochs (compilation, CUDA-graph capture, autotuning).

Per model and setting it prints samples/s, the epoch time and the projected wall time of the
paper recipe (recipe epochs x epoch time; validation not included), the data path's share of an
epoch (building the epoch's plan and gathering every batch, timed alone), and the device's name
beside every figure. Settings: eager fp32, TF32, bf16 autocast, ``torch.compile`` and CUDA
graphs (``torch.compile(mode="reduce-overhead")``) -- all but eager need CUDA and print
"n/a (no CUDA)" on a CPU. On CUDA it also runs N = 1, 2, 4, 8 concurrent training processes on
the one GPU (aggregate samples/s, with each model's best setting) and projects the whole SkelAct
table (5 models x ``--seeds`` seeds on xsub, the published 4 models on xview) with the best
setting, run one after another and with the best concurrency. PYSKL's ST-GCN++ and CTR-GCN
(``stgcnpp``, ``ctrgcn``: SGD + cosine, 80 epochs, T = 100) are measured and projected per
recipe like the five, but are not cells of SkelAct's table.

    python benchmarks/train_throughput.py                        # CUDA: the full NTU-size set
    python benchmarks/train_throughput.py --samples 2000 --models hcn --epochs 1   # CPU-sized
    python benchmarks/train_throughput.py --json results.json

Figures to quote need a quiet machine: nothing else on the GPU (or, on a CPU, on the cores), and
``--epochs 3`` or more so that the mean is over several epochs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelact.data.dataset import SkeletonSet
from skelact.engine import distributed as D
from skelact.engine.determinism import restore_execution_mode, set_execution_mode
from skelact.engine.recipes import RECIPES, TrainConfig, resolve_config
from skelact.engine.safety import StopRequest
from skelact.engine.train import fp32_precision, plan_epoch, setup, train_one_epoch
from skelact.layouts import NTU25
from skelact.report import PUBLISHED

NUM_JOINTS = NTU25.num_joints

HERE = Path(__file__).resolve().parent
#: PYSKL's baselines (docs/baselines.md): measured like the others, not cells of SkelAct's table.
PYSKL_BASELINES = ("stgcnpp", "ctrgcn")
#: The SkelAct table: its five models' published (model, benchmark) cells.
SKELACT_CELLS = tuple((m, b) for m, b in PUBLISHED if m not in PYSKL_BASELINES)
NTU60_TRAIN = {"xsub": 40_091, "xview": 37_646}  # training samples with skeletons (NTU-60)
NUM_CLASSES = 60
NUM_PERSONS = 2
SETTINGS: dict[str, dict[str, Any]] = {
    "eager fp32": {},
    "tf32": {"tf32": True},
    "bf16 autocast": {"amp": "bf16"},
    "torch.compile": {"compile": True},
    "cuda graphs": {"cuda_graphs": True},
}
CONCURRENCY = (1, 2, 4, 8)
NO_CUDA = "n/a (no CUDA)"


# ----------------------------------------------------------------------------- data and device


def synthetic_set(samples: int, seed: int = 0) -> SkeletonSet:
    """``samples`` sequences of 32-300 frames (NTU-like lengths), built in memory."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.rint(rng.lognormal(np.log(75.0), 0.45, samples)), 32, 300).astype(int)
    offsets = np.zeros(samples + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    storage = np.empty((int(offsets[-1]), NUM_JOINTS, NUM_PERSONS, 3), dtype=np.float32)
    for start in range(0, storage.shape[0], 1 << 18):  # in chunks: no float64 copy of it all
        chunk = storage[start : start + (1 << 18)]
        chunk[...] = rng.standard_normal(chunk.shape, dtype=np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=samples)
    names = [f"synthetic{i:06d}" for i in range(samples)]
    return SkeletonSet.from_storage(storage, offsets, labels, names, "synthetic",
                                    num_classes=NUM_CLASSES)  # fmt: skip


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    sys.path.insert(0, str(HERE))
    from models import cpu_description, cpu_line

    return cpu_line(cpu_description())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- one measurement


def measure(model: str, options: dict[str, Any], sets: tuple[SkeletonSet, SkeletonSet],
            args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """Mean samples/s and epoch time of ``args.epochs`` epochs after ``args.warmup``."""
    with tempfile.TemporaryDirectory(prefix="skelact-throughput-") as out:
        cfg = resolve_config(TrainConfig(
            model=model, out_dir=out, batch_size=args.batch_size, device=args.device,
            num_classes=NUM_CLASSES, track=False, quiet=True, seed=0, **options,
        ))  # fmt: skip
        env, device = D.init_distributed(cfg.device)
        prev = set_execution_mode(cfg, device)
        try:
            with fp32_precision(cfg, device):
                with contextlib.redirect_stdout(sys.stderr):  # the run's log, off the table
                    run = setup(cfg, env, device, sets=sets)
                stop, seconds, samples = StopRequest(), 0.0, 0
                for epoch in range(1, args.warmup + args.epochs + 1):
                    record = train_one_epoch(run, epoch, stop)
                    if epoch > args.warmup:
                        seconds += record["epoch_seconds"]
                        samples += round(record["samples_per_s"] * record["epoch_seconds"])
                data_seconds = data_path_seconds(run, args.warmup + args.epochs + 1, device)
        finally:
            restore_execution_mode(prev)
    epoch_seconds = seconds / args.epochs
    return {
        "samples_per_s": samples / seconds,
        "epoch_seconds": epoch_seconds,
        "recipe_epochs": int(cfg.epochs),
        "recipe_hours": cfg.epochs * epoch_seconds / 3600,
        "data_share": data_seconds / epoch_seconds,
    }


def data_path_seconds(run: Any, epoch: int, device: torch.device) -> float:
    """One epoch's data path alone: its plan (draws, upload) and every batch's gather."""
    _sync(device)
    t0 = time.perf_counter()
    steps, plan, _ = plan_epoch(run, epoch)
    start = 0
    for idx in steps:
        run.train_sampler.gather(run.train_set, plan[start : start + len(idx)])
        start += len(idx)
    _sync(device)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- concurrency


def worker(args: argparse.Namespace) -> None:
    """One of N concurrent runs: print its measurement as JSON."""
    sets = (synthetic_set(args.samples), synthetic_set(args.val_samples, seed=1))
    print(json.dumps(measure(args.models[0], json.loads(args.worker), sets, args)))


def concurrent(model: str, options: dict[str, Any], n: int, args: argparse.Namespace) -> float:
    """Aggregate samples/s of ``n`` runs started together on the one GPU: the sum of their
    rates over their measured epochs (the warm-up epochs line the runs up first)."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(options), "--models", model,
           "--samples", str(args.samples), "--val-samples", str(args.val_samples),
           "--epochs", str(args.epochs), "--warmup", str(args.warmup),
           "--batch-size", str(args.batch_size), "--device", args.device]  # fmt: skip
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    results = []
    for proc in procs:
        stdout, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a concurrent run of {model} failed (exit {proc.returncode})")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return sum(r["samples_per_s"] for r in results)


# ----------------------------------------------------------------------------- the table


def table_hours(
    best: dict[str, float], seeds: int, speedup: float = 1.0, cells=SKELACT_CELLS
) -> float | None:
    """A table on one GPU: every (model, benchmark) of ``cells`` (SkelAct's table by default)
    x seeds; None unless every model of it was measured."""
    total = 0.0
    for model, benchmark in cells:
        if model not in best:
            return None
        total += RECIPES[model]["epochs"] * NTU60_TRAIN[benchmark] / best[model] * seeds
    return total / 3600 / speedup


def concurrency_gain(rows: list[dict[str, Any]]) -> float:
    """The aggregate gain over one run that every model reaches (its best N), the smallest."""
    gains = []
    for model in {r["model"] for r in rows}:
        mine = {r["n"]: r["aggregate_samples_per_s"] for r in rows if r["model"] == model}
        gains.append(max(mine.values()) / mine[1])
    return min(gains, default=1.0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--samples", type=int, default=NTU60_TRAIN["xsub"])
    parser.add_argument("--val-samples", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs per setting")
    parser.add_argument("--warmup", type=int, default=1, help="epochs before measuring")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch (recipe: 64)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per table cell")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one concurrent run (internal)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    cuda = args.device.startswith("cuda")
    name = device_name(args.device)
    print(
        f"device: {name}\nsynthetic NTU-60-like set: {args.samples} training samples, "
        f"batch {args.batch_size}, {args.warmup} warm-up + {args.epochs} measured epoch(s)"
    )
    if args.samples < NTU60_TRAIN["xsub"]:
        print(
            f"(smaller than NTU-60 xsub's {NTU60_TRAIN['xsub']}: epoch times and projections "
            f"are scaled to the full set by samples/s)"
        )
    sets = (synthetic_set(args.samples), synthetic_set(args.val_samples, seed=1))
    rows: list[dict[str, Any]] = []
    print("| model | setting | samples/s | NTU epoch (s) | paper recipe | data path | device |")
    print("|---|---|---:|---:|---:|---:|---|")
    for model in args.models:
        for setting, options in SETTINGS.items():
            if options and not cuda:
                print(f"| {model} | {setting} | {NO_CUDA} | | | | {name} |")
                continue
            r = measure(model, options, sets, args)
            full_epoch = NTU60_TRAIN["xsub"] / r["samples_per_s"]
            rows.append({"model": model, "setting": setting, "device": name, **r,
                         "ntu_epoch_seconds": full_epoch,
                         "recipe_hours": r["recipe_epochs"] * full_epoch / 3600})  # fmt: skip
            print(
                f"| {model} | {setting} | {r['samples_per_s']:,.0f} | {full_epoch:,.1f} | "
                f"{r['recipe_epochs']} ep: {rows[-1]['recipe_hours']:.2f} h | "
                f"{100 * r['data_share']:.1f}% | {name} |",
                flush=True,
            )
    best = {}
    for row in rows:
        if row["samples_per_s"] > best.get(row["model"], {}).get("samples_per_s", 0):
            best[row["model"]] = row
    report: dict[str, Any] = {"device": name, "args": {k: str(v) for k, v in vars(args).items()},
                              "rows": rows, "concurrent": []}  # fmt: skip
    rates = {m: r["samples_per_s"] for m, r in best.items()}
    hours = table_hours(rates, args.seeds)
    speedup = 1.0
    if cuda:
        for model, row in best.items():
            one = None
            for n in CONCURRENCY:
                agg = concurrent(model, SETTINGS[row["setting"]], n, args)
                one = one or agg
                report["concurrent"].append(
                    {
                        "model": model,
                        "setting": row["setting"],
                        "n": n,
                        "aggregate_samples_per_s": agg,
                        "device": name,
                    }
                )
                print(
                    f"{model} ({row['setting']}) x{n} concurrent: {agg:,.0f} samples/s "
                    f"aggregate ({agg / one:.2f}x of one run) on {name}",
                    flush=True,
                )
        speedup = concurrency_gain(report["concurrent"])
    else:
        print(f"concurrent runs (N = {', '.join(map(str, CONCURRENCY))}): {NO_CUDA}")
    cells = f"{len(SKELACT_CELLS)} (model, benchmark) cells x {args.seeds} seeds"
    if hours is None:
        print(f"whole SkelAct table ({cells}): needs all five models measured (--models)")
    else:
        settings = ", ".join(f"{m} {r['setting']}" for m, r in best.items())
        print(
            f"whole SkelAct table ({cells}), best setting ({settings}), one run at a time: "
            f"{hours:.1f} h on {name}"
        )
        if cuda:
            print(f"  with concurrent runs ({speedup:.2f}x): {hours / speedup:.1f} h on {name}")
        report["table_hours"] = hours
        report["table_hours_concurrent"] = hours / speedup if cuda else None
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
