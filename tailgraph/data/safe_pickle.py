"""A restricted unpickler for data-set pickles (Action Genome's annotations).

A pickle can name any importable callable and call it while loading; a downloaded annotation
file must not be able to run code. :func:`safe_load` admits only plain containers and scalars
and the few numpy functions needed to rebuild arrays, dtypes and numpy scalars; anything else
raises :class:`tailgraph.errors.DataError` naming the file and the refused global.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError

__all__ = ["safe_load", "safe_loads", "ALLOWED_GLOBALS"]

ALLOWED_GLOBALS = {
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "str"),
    ("builtins", "bytes"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "bool"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    # numpy arrays pickled with protocol 2 (Python 2 era files) carry their bytes through this
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise DataError(
                f"refused to load {module}.{name}: only containers, scalars and numpy arrays "
                "are allowed "
                "in annotation pickles",
                file=self.source,
                field="pickle",
            )
        return super().find_class(module, name)


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the restricted unpickler."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
    ) as exc:
        raise DataError(
            f"not a readable pickle (corrupt or truncated?): {exc.__class__.__name__}: {exc}",
            file=source,
        ) from None


def safe_load(path: str | Path) -> Any:
    """Unpickle a file with the restricted unpickler (see the module docstring)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", file=str(path)) from None
    return safe_loads(data, str(path))
