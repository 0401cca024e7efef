"""Write-then-rename, for every file the project produces.

A crash or a kill in the middle of a write must never leave a half-written pickle, checkpoint or
report where a later stage (or DVC's cache) would take it for a finished one. Each writer fills a
temporary file ``.<name>.<random>.tmp-<pid>`` in the destination folder and renames it over the
target, which is atomic on one filesystem; on any error the temporary file is removed and the old
target (if any) is untouched. A SIGKILL cannot run cleanup code, so :func:`remove_stale_temps`
lets the next run in that folder delete temporaries whose writer process is gone.

A stage whose outputs must appear together (all of them or none) stages each one instead: it
fills :func:`staged_temp` (a name :func:`remove_stale_temps` also knows), and renames all of them
only at the end, inside :func:`signals_held`; :class:`StagedText` is such an output for text.

The finished file gets the mode ``open()`` would give it (0666 minus the umask), not mkstemp's
0600: a results folder shared by a team must stay readable by the team.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` (any writer that takes a path), then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp-{os.getpid()}",
                               dir=path.parent)  # fmt: skip
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def staged_temp(final: Path, part: str | None = None) -> Path:
    """The temporary a staged output fills for ``final``: ``.<name>[.<part>].tmp-<pid>``.

    One name per process and output (``part`` tells several temporaries of one output apart),
    so a stage can find and remove its own leftovers, and the next run a dead writer's.
    """
    middle = f".{part}" if part is not None else ""
    return final.with_name(f".{final.name}{middle}.tmp-{os.getpid()}")


class StagedText:
    """A text output written now to its :func:`staged_temp`; ``commit`` renames it into place.

    For a report or a list that must appear together with a stage's other outputs, never
    without them: the caller commits all of them (in :func:`signals_held`) or aborts all.
    """

    def __init__(self, final: Path, text: str) -> None:
        self.final = final
        self.tmp = staged_temp(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.write_text(text, encoding="utf-8")

    def commit(self) -> None:
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """No SIGINT/SIGTERM while a stage renames its outputs: all of them are replaced, or none.

    The signals are blocked, not lost: one sent meanwhile arrives when the block ends. Outside
    the main thread (where Python runs no handler) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Delete temporaries of :func:`atomic_write` whose writing process no longer exists.

    Called by each stage before it writes into ``folder`` (under its output lock), so temps left
    by a SIGKILL do not pile up. A temp of a live process (another writer) is left alone.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*.tmp-*") if recursive else folder.glob(".*.tmp-*")
    removed = []
    for path in found:
        match = _TEMP.match(path.name)
        if match and path.is_file() and not _pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
