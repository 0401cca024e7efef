"""Write-then-rename, for every file the project produces.

A crash or a kill in the middle of a write must never leave a half-written pickle, checkpoint or
report where a later stage (or DVC's cache) would take it for a finished one. Each writer fills a
temporary file ``.<name>.<random>.tmp-<pid>`` in the destination folder and renames it over the
target, which is atomic on one filesystem; on any error the temporary file is removed and the old
target (if any) is untouched. A SIGKILL cannot run cleanup code, so :func:`remove_stale_temps`
lets the next run in that folder delete temporaries whose writer process is gone.

The finished file gets the mode ``open()`` would give it (0666 minus the umask), not mkstemp's
0600: a results folder shared by a team must stay readable by the team.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
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
