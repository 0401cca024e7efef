"""The one exception family for user and environment errors.

Why one base class: the CLI turns exactly these into a single ``error: ...`` line and a non-zero
exit (no traceback unless ``--debug`` or ``SKELACT_DEBUG=1``), while anything else is a bug and
keeps its traceback. Each stage raises a subclass that names the file or key and the problem;
the message is the whole user-facing text, so it must make sense on its own line.
"""

from __future__ import annotations


class SkelactError(Exception):
    """A problem with the user's input, settings or environment (not a bug in skelact)."""


class OutputBusyError(SkelactError):
    """Another live process is writing into the same output folder."""


class InterruptedRun(SkelactError):
    """The run was stopped by SIGINT/SIGTERM; outputs were left consistent (resumable)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


def bounded(text: object, limit: int = 80) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters: a bad token is quoted, never a megabyte."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 5] + "...'" + f" ({len(shown)} chars)"
