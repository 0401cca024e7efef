"""Reading skeleton pickles without trusting them.

Pickles are code: a plain ``pickle.load`` of a tampered file can run anything. `safe_load` uses a
restricted unpickler that only rebuilds plain containers and NumPy arrays, so such a file fails
with `UnsafePickleError` instead of running. It also refuses a file that asks for more memory
than it could legitimately need: every allowed constructor that allocates from a number in the
file (``bytes(n)``, ``bytearray(n)``, an empty array of a given shape, a void scalar) is checked
against the file's size, because a real pickle stores the data it rebuilds and so never needs
more than it holds. Allocations that the pickle format itself makes from a length prefix cannot
be intercepted; a `MemoryError` there becomes a `DatasetError` too, so hostile or corrupt input
always ends in one line naming the file.
"""

from __future__ import annotations

import importlib
import io
import math
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from skelact.errors import SkelactError

__all__ = ["DatasetError", "UnsafePickleError", "safe_load"]


class DatasetError(SkelactError, ValueError):
    """A data file exists but is not a usable skeleton pickle; the message names file and cause.

    Also a ValueError, so callers written against the first version keep catching it.
    """


class UnsafePickleError(DatasetError):
    """The pickle asks for something a skeleton pickle never contains (possible tampering)."""


# (module, name) pairs that a skeleton pickle legitimately references. Everything here only
# rebuilds data: containers, NumPy dtypes, arrays and scalars. Nothing can call os/subprocess/eval.
_BUILTINS = frozenset(
    {
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "int",
        "float",
        "complex",
        "bool",
        "str",
        "bytes",
        "bytearray",
    }
)
# NumPy moved numpy.core to numpy._core in 2.0; pickles from either era name one of the two.
_NUMPY_MODULE_NAMES = {
    "multiarray": frozenset({"_reconstruct", "scalar"}),
    "numeric": frozenset({"_frombuffer"}),  # ndarray.__reduce_ex__ with protocol 5
}
# Protocol-2 pickles (Python 2 era) encode raw bytes with _codecs.encode(str, 'latin1').
_CODECS = frozenset({"encode"})


def _numpy_scalar_types() -> dict[str, type]:
    """NumPy's scalar types (float32, int64, bool_, ...) by name, as pickles reference them."""
    return {
        t.__name__: t
        for t in np.sctypeDict.values()
        if isinstance(t, type) and issubclass(t, np.generic)
    }


_NUMPY_SCALARS = _numpy_scalar_types()


def _count_argument(*args: Any) -> int:
    """Bytes that ``bytes(n)`` / ``bytearray(n)`` / ``numpy.void(n)`` allocate: n, if n is given."""
    return args[0] if args and isinstance(args[0], int) else 0


def _array_bytes(shape: Any, dtype: Any = float, *_: Any) -> int:
    """Bytes an empty array of ``shape`` and ``dtype`` needs (0 when NumPy would refuse anyway)."""
    try:
        dims = [int(d) for d in shape] if isinstance(shape, (tuple, list)) else [int(shape)]
        return math.prod(max(d, 0) for d in dims) * np.dtype(dtype).itemsize
    except (TypeError, ValueError, OverflowError):
        return 0


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals listed above, with allocating constructors size-checked."""

    def __init__(self, file: io.BufferedIOBase, source: str, budget: int) -> None:
        super().__init__(file)
        self._source = source
        self._budget = budget
        # The guarded stand-in for numpy.ndarray: _reconstruct receives it as its subtype.
        self._ndarray = self._checked(np.ndarray, _array_bytes, "numpy.ndarray")

    def _checked(self, func: Callable[..., Any], size: Callable[..., int], what: str) -> Any:
        """``func`` refusing calls whose allocation (``size(*args)``) exceeds the file's size."""

        def call(*args: Any) -> Any:
            wanted = size(*args)
            if wanted > self._budget:
                raise UnsafePickleError(
                    f"{self._source}: refusing to load: the pickle asks {what} for {wanted} "
                    f"bytes but the file holds only {self._budget}; the file is corrupt or "
                    "has been tampered with"
                )
            return func(*args)

        return call

    def _reconstruct(self, func: Callable[..., Any]) -> Any:
        def size(subtype: Any, shape: Any, dtype: Any = b"b") -> int:
            return _array_bytes(shape, dtype)

        checked = self._checked(func, size, "numpy _reconstruct")

        def call(subtype: Any, *args: Any) -> Any:
            if subtype is not self._ndarray:
                raise UnsafePickleError(
                    f"{self._source}: refusing to load: _reconstruct of {subtype!r}, not a plain "
                    "NumPy array"
                )
            return checked(np.ndarray, *args)

        return call

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocols 0-2 name builtins the Python 2 way
            module = "builtins"
        if module == "builtins" and name in _BUILTINS:
            found = getattr(importlib.import_module("builtins"), name)
            if name in ("bytes", "bytearray"):
                return self._checked(found, _count_argument, name)
            return found
        if module == "_codecs" and name in _CODECS:
            return getattr(importlib.import_module("_codecs"), name)
        if module == "numpy":
            if name == "ndarray":
                return self._ndarray
            if name == "dtype":
                return np.dtype
            if name in _NUMPY_SCALARS:
                scalar = _NUMPY_SCALARS[name]
                if issubclass(scalar, np.flexible):  # numpy.void(n) allocates n bytes
                    return self._checked(scalar, _count_argument, f"numpy.{name}")
                return scalar
        if module == "numpy.dtypes" and name.endswith("DType"):
            # NumPy >= 1.25 may pickle dtype classes such as numpy.dtypes.Float32DType.
            import numpy.dtypes as np_dtypes

            if hasattr(np_dtypes, name):
                return getattr(np_dtypes, name)
        for prefix in ("numpy.core.", "numpy._core."):
            if module.startswith(prefix):
                submodule = module[len(prefix) :]
                if name in _NUMPY_MODULE_NAMES.get(submodule, ()):
                    found = _import_numpy_core(submodule, name)
                    return self._reconstruct(found) if name == "_reconstruct" else found
        raise UnsafePickleError(
            f"{self._source}: refusing to load: the pickle references {module}.{name}, which a "
            "skeleton pickle never contains (only builtins containers and NumPy arrays are "
            "allowed); the file may have been tampered with"
        )


def _import_numpy_core(submodule: str, name: str) -> Any:
    """Resolve numpy.core.X / numpy._core.X under whichever NumPy is installed (no warnings)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            module = importlib.import_module(f"{package}.{submodule}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise UnsafePickleError(f"numpy has no {submodule}.{name} in this version")


def safe_load(path: str | Path) -> object:
    """Unpickle ``path`` allowing only containers and NumPy arrays (never arbitrary code).

    Raises FileNotFoundError for a missing file, `UnsafePickleError` for a pickle that references
    anything else (e.g. ``os.system``) or asks for more memory than its size justifies, and
    `DatasetError` for a file that is not a pickle or cannot be rebuilt in the available memory.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise DatasetError(f"{path}: not a file (expected a .pkl skeleton pickle)")
    with path.open("rb") as handle:
        size = path.stat().st_size
        try:
            return _RestrictedUnpickler(handle, str(path), size).load()
        except UnsafePickleError:
            raise
        except MemoryError:
            raise DatasetError(
                f"{path}: out of memory while unpickling this {size}-byte file: it asks for more "
                "memory than is available (corrupt, tampered with, or too large for this machine)"
            ) from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
            raise DatasetError(
                f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); expected a "
                "skeleton pickle written by `skelact preprocess`"
            ) from exc
        except (IndexError, KeyError, UnicodeDecodeError, OverflowError) as exc:
            raise DatasetError(f"{path}: corrupt pickle ({type(exc).__name__}: {exc})") from exc
