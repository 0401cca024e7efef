"""glibc's allocator told to keep freed memory for reuse (one ``mallopt`` call per setting).

Why: glibc maps large buffers from the kernel afresh and unmaps them on free (and trims the heap
top), so a loop that frees and reallocates the same sizes -- a file's parsing temporaries, a
training step's activations -- pays its page faults again on every round. Both preprocessing
and training measured this as a large share of their time on 2-core machines. The settings
change only where memory comes from, never a value.
"""

from __future__ import annotations

import sys

__all__ = ["keep_freed_memory"]

#: glibc's ``<malloc.h>`` parameter numbers.
_PARAMETERS = {"trim_threshold": -1, "top_pad": -2, "mmap_threshold": -3, "mmap_max": -4}


def keep_freed_memory(**settings: int) -> bool:
    """Apply ``settings`` (``trim_threshold``, ``top_pad``, ``mmap_threshold``, ``mmap_max``)
    with ``mallopt``; True when every one was accepted. Outside glibc Linux (musl, macOS,
    Windows) nothing happens and the result is False."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # only here: a few ms of import

    try:
        mallopt = ctypes.CDLL(None).mallopt  # absent outside glibc (e.g. musl)
    except (OSError, AttributeError):
        return False
    return all([bool(mallopt(_PARAMETERS[name], value)) for name, value in settings.items()])
