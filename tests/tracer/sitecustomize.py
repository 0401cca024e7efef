"""Records what a Python process of a traced pipeline run used (tests/test_pipeline.py).

Put this folder first on ``PYTHONPATH`` and set ``SKELACT_TRACE_DIR``: every Python process
started then (each DVC stage command, its worker processes) writes ``<pid>.json`` at exit with
its DVC stage (``DVC_STAGE``, set by DVC), the ``skelact`` module files it imported and the
files inside the package it opened (seen by an audit hook, so package data such as
``resources/*.txt`` counts however it is read). Nothing is patched; without the variable this
file does nothing.
"""

import atexit
import json
import os
import sys

_OUT = os.environ.get("SKELACT_TRACE_DIR")


def _source(path: str) -> str:
    """A compiled extension module counts as its C source (what a stage depends on)."""
    import importlib.machinery

    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if path.endswith(suffix) and os.path.exists(path[: -len(suffix)] + ".c"):
            return path[: -len(suffix)] + ".c"
    return path


def _record(opened: set[str]) -> None:
    package = sys.modules.get("skelact")
    if package is None or not getattr(package, "__file__", None):
        return
    root = os.path.dirname(os.path.abspath(package.__file__))
    modules = {
        os.path.abspath(m.__file__)
        for m in list(sys.modules.values())
        if isinstance(getattr(m, "__file__", None), str)
    }
    used = sorted(
        os.path.relpath(_source(p), root).replace(os.sep, "/")
        for p in modules | {os.path.abspath(p) for p in opened}
        if p.startswith(root + os.sep) and "__pycache__" not in p
    )
    record = {"stage": os.environ.get("DVC_STAGE"), "argv": sys.argv, "used": used}
    with open(os.path.join(_OUT, f"{os.getpid()}.json"), "w", encoding="utf-8") as fh:
        json.dump(record, fh)


if _OUT:
    _opened: set[str] = set()

    def _audit(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], str):
            _opened.add(args[0])

    sys.addaudithook(_audit)
    atexit.register(_record, _opened)
