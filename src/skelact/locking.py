"""One writer per output folder: a pid lock file, stale locks detected.

Two ``skelact train`` (or ``preprocess``) runs into one folder would interleave their files (the
``last.pt`` of one seed beside the ``best.pt`` of another) and both exit 0. The lock is a file
``.skelact.lock`` created with ``O_EXCL`` that holds the owner's pid and host. A lock whose pid is
no longer alive on this host (a SIGKILLed run) is stale and taken over, with a note; a live one
makes the second run fail at once with :class:`~skelact.errors.OutputBusyError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from skelact.errors import OutputBusyError, SkelactError

LOCK_NAME = ".skelact.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str], what: str = "skelact") -> Iterator[Path]:
    """Hold ``folder``'s lock for the duration of the ``with`` block (the folder is created).

    Re-entrant within one process (a nested lock on the same folder is a no-op), so a stage may
    lock its folder and call helpers that lock it too.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SkelactError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkelactError(f"{folder}: cannot create the output folder: {exc.strerror}") from None
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "what": what}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _read(path)
            pid, host = owner.get("pid"), owner.get("host")
            if pid == me["pid"] and host == me["host"]:
                yield path  # re-entrant: the outer holder releases it
                return
            if isinstance(pid, int) and host == me["host"] and not _alive(pid):
                path.unlink(missing_ok=True)  # stale: its owner died without releasing it
                continue
            if not owner:  # being written right now, or garbage: never steal a fresh one blindly
                raise OutputBusyError(
                    f"{folder}: locked by another process ({path} is unreadable; delete it if "
                    f"no skelact run is using this folder)"
                ) from None
            raise OutputBusyError(
                f"{folder}: another {owner.get('what', 'skelact')} run (pid {pid} on {host}) is "
                f"writing here; wait for it or choose another output folder"
            ) from None
        except OSError as exc:
            raise SkelactError(f"{folder}: cannot write here: {exc.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(me, handle)
        break
    else:
        raise OutputBusyError(f"{folder}: could not take the lock {path}")
    try:
        yield path
    finally:
        if _read(path).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
