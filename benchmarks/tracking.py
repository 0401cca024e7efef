"""What MLflow tracking costs a stage: a tracked run's open, per-epoch logging and finish.

Each round starts one fresh process per mode, in alternating order, and each process does what a
training stage does with its tracker: open a run on a SQLite store (schema already created),
log the resolved params and tags, log ``--epochs`` epochs of metrics, finish. Modes:

* ``synchronous``: what skelact does for a local store (SQLite, a folder): each batch is written
  in place (``skelact.tracking.is_local_store``);
* ``asynchronous``: MLflow's queue, what skelact keeps for a server, forced here on the same
  SQLite file so that the two differ in nothing else.

Printed per mode: the median over rounds of the whole process (interpreter start included), of
opening the run (imports and store check included), of all logging calls, and of finishing.

    python benchmarks/tracking.py                      # 5 rounds, 30 epochs
    python benchmarks/tracking.py --rounds 9 --epochs 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODES = ("synchronous", "asynchronous")


def worker(mode: str, uri: str, epochs: int) -> dict[str, float]:
    """One stage's tracking, timed in parts (runs in its own process)."""
    import skelact.tracking as tracking

    if mode == "asynchronous":
        tracking.is_local_store = lambda uri: False
    start = time.perf_counter()
    tracker = tracking.open_run(enabled=True, experiment="bench", run_name=mode, tracking_uri=uri,
                                quiet=True, system_metrics=False)  # fmt: skip
    opened = time.perf_counter()
    tracker.log_params({"model": "hcn", "lr": 0.001, "epochs": epochs, "lr_steps": [7, 9]})
    tracker.set_tags({"model": "hcn", "seed": 0})
    for epoch in range(1, epochs + 1):
        tracker.log_metrics({"loss": 1.0 / epoch, "lr": 0.001, "val_top1": 0.5}, step=epoch)
    logged = time.perf_counter()
    tracker.finish()
    done = time.perf_counter()
    return {"open": opened - start, "log": logged - opened, "finish": done - logged}


def run_worker(mode: str, uri: str, epochs: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--uri", uri,
           "--epochs", str(epochs)]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    parts = json.loads(out.stdout.strip().splitlines()[-1])
    return {"process": time.perf_counter() - start, **parts}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30, help="metric batches per run")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of lines.")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.uri, args.epochs)))
        return

    sys.path.insert(0, str(HERE))
    from preprocess import cpu, load

    with tempfile.TemporaryDirectory(prefix="skelact-bench-tracking-") as tmp:
        uri = "sqlite:///" + (Path(tmp) / "mlflow.db").as_posix()
        run_worker("synchronous", uri, 1)  # creates the schema: not part of any figure
        if not args.json:
            print(f"CPU: {cpu()}; {load()} at start; SQLite store, {args.epochs} metric batches "
                  f"per run, median of {args.rounds} interleaved rounds")  # fmt: skip
        times: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for r in range(args.rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                times[mode].append(run_worker(mode, uri, args.epochs))
    medians = {
        mode: {k: statistics.median(t[k] for t in runs) for k in runs[0]}
        for mode, runs in times.items()
    }
    if args.json:
        print(json.dumps({"cpu": cpu(), "epochs": args.epochs, "seconds": medians}))
        return
    for mode, med in medians.items():
        print(f"{mode:>12}: process {med['process']:5.2f} s | open {med['open']:5.2f} s | "
              f"log {med['log']:5.2f} s | finish {med['finish']:5.2f} s  [{cpu()}]")  # fmt: skip
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
