"""The progress bar of the stages that walk many files (synth, preprocess): files/s and ETA."""

from __future__ import annotations

from typing import Any


def file_progress(label: str, *, transient: bool = False) -> Any:
    """A ``rich`` Progress showing ``label``, a bar, done/total, files/s and the time left.

    rich is imported here, on first use, so that importing a stage module stays cheap.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class FilesPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} files/s" if speed else "- files/s")

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        FilesPerSecond(),
        TimeRemainingColumn(),
        transient=transient,
    )
