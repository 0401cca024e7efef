"""Preprocessing, step 3 of 3: stream the samples into the output pickles.

Each output is a pickled list written opcode by opcode (protocol 3: memo indices are explicit,
so independently pickled items can be concatenated), which ``pickle.load`` reads back as an
ordinary list of dicts: nothing ever holds all samples. The list goes to a temporary file
(``.<name>.tmp-<pid>``, the house's temp pattern, so a SIGKILLed run's leftovers are found by
:func:`skelact.atomic.remove_stale_temps`) and is renamed only when the whole stage succeeded.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

from skelact.atomic import staged_temp
from skelact.data.prep_parse import PROTOCOL, pickle_body


class PickleListWriter:
    """Streams a pickled list (optionally as the 'annotations' value of a dict) to a temp file."""

    def __init__(self, final: Path, wrap_dict_key: str | None = None) -> None:
        self.final = final
        self.tmp = staged_temp(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.file: BinaryIO = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish/abort
        self.wrap = wrap_dict_key
        self.count = 0
        self.file.write(pickle.PROTO + bytes([PROTOCOL]))
        if wrap_dict_key is not None:
            self.file.write(pickle.EMPTY_DICT + pickle_body(wrap_dict_key))
        self.file.write(pickle.EMPTY_LIST)

    def append(self, item_body: bytes) -> None:
        self.file.write(item_body + pickle.APPEND)
        self.count += 1

    def finish(self, extra_items: dict[str, Any] | None = None) -> None:
        """Close the list (and the dict, with ``extra_items`` after 'annotations')."""
        if self.wrap is not None:
            self.file.write(pickle.SETITEM)
            for key, value in (extra_items or {}).items():
                self.file.write(pickle_body(key) + pickle_body(value) + pickle.SETITEM)
        self.file.write(pickle.STOP)
        self.file.close()

    def commit(self) -> None:
        """Move the finished file into place (the file gets the umask's mode, like ``open``)."""
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)
