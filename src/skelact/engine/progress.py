"""Console output of a training run: a rich progress bar on a terminal, plain lines otherwise.

Only rank 0 prints. Every line also goes to ``train.log`` next to the checkpoints, so a run
started by DVC or a batch scheduler (no terminal) still leaves a readable trace.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


class RunLog:
    """Rank-0 log lines to stderr (unless quiet) and to ``<out_dir>/train.log``."""

    def __init__(self, out_dir: Path | None, *, enabled: bool, quiet: bool) -> None:
        self.enabled = enabled
        self.quiet = quiet
        self.path = out_dir / "train.log" if (out_dir is not None and enabled) else None

    def __call__(self, message: str, *, always: bool = False) -> None:
        if not self.enabled:
            return
        if always or not self.quiet:
            print(message, file=sys.stderr, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


class EpochProgress:
    """Per-epoch bar with loss, samples/s and ETA; a no-op when not on a terminal.

    ``update`` is cheap to call every step; the loss it shows is whatever the caller last
    synchronised (the loop only reads the loss off the device every few steps).
    """

    def __init__(self, *, enabled: bool, epoch: int, epochs: int, steps: int) -> None:
        self.active = enabled and sys.stderr.isatty()
        self._progress = None
        self._task = None
        self.start = time.perf_counter()
        if self.active:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn(f"epoch {epoch}/{epochs}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[rate]} samples/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )
            self._task = self._progress.add_task("train", total=steps, loss="-", rate="-")

    def __enter__(self) -> EpochProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, samples: int, loss: float | None) -> None:
        if self._progress is None:
            return
        rate = samples / max(time.perf_counter() - self.start, 1e-9)
        fields = {"rate": f"{rate:,.0f}"}
        if loss is not None:
            fields["loss"] = f"{loss:.4f}"
        self._progress.update(self._task, completed=step, **fields)
