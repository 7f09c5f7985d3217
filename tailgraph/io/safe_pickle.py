"""A restricted unpickler for data-set pickles (Action Genome's annotations).

A pickle can name any importable callable and call it while loading; a downloaded annotation
file must not be able to run code. :func:`safe_load` admits only plain containers and scalars
and the few numpy functions needed to rebuild arrays, dtypes and numpy scalars; anything else
raises :class:`tailgraph.errors.DataError` naming the file and the refused global.

Memory is bounded too: a few bytes of pickle can ask for gigabytes (a memo index of 2³² makes
the C unpickler allocate and clear a memo table of that size; ``bytearray(10**12)`` allocates a
terabyte). ``bytes`` / ``bytearray`` are admitted only from a buffer, never from a size, and on
Linux the load runs under an address-space limit of the process's current size plus
``max(1 GiB, 16 × the pickle's size)``; an allocation beyond it is the project's error, not an
out-of-memory kill.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError

__all__ = ["safe_load", "safe_loads", "bounded_memory", "ALLOWED_GLOBALS"]

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


def _from_buffer(kind: type) -> Any:
    """``bytes`` / ``bytearray`` that refuse an integer size (a buffer-sized allocation only)."""

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError(f"{kind.__name__}(<size>) is not allowed in a pickle")
        return kind(*args)

    return build


_SIZED = {
    ("builtins", "bytes"): _from_buffer(bytes),
    ("builtins", "bytearray"): _from_buffer(bytearray),
}


def _vm_bytes() -> int | None:
    """The process's virtual size (Linux ``/proc/self/statm``), or ``None``."""
    import os

    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def bounded_memory(budget: int) -> Iterator[None]:
    """Run the block under an address-space limit of the current size plus ``budget`` bytes
    (Linux; elsewhere the block runs unbounded)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Linux
        yield
        return
    current = _vm_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if current is None:
        yield
        return
    limit = current + int(budget)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY and soft <= limit:
        yield  # already bounded more tightly
        return
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # Python 2 era pickles
            module = "builtins"
        if (module, name) in _SIZED:
            return _SIZED[(module, name)]
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
        with bounded_memory(max(1 << 30, 16 * len(data))):
            return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except MemoryError:
        raise DataError(
            "the pickle asks for more memory than its size can justify "
            f"(over {max(1 << 30, 16 * len(data)) >> 20} MiB): corrupt or hostile",
            file=source,
            field="pickle",
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        OverflowError,
        RecursionError,
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
    except IsADirectoryError:
        raise DataError("is a directory, not a pickle file", file=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
    return safe_loads(data, str(path))
