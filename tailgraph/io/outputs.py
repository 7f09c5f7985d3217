"""Outputs that are never partial and never clobbered by surprise.

Every file or folder the command line writes goes to a temporary name beside its destination
and is renamed into place once complete; a failure removes the temporary and leaves the
destination as it was. An existing destination is replaced only when the caller passes
``overwrite`` (the commands' ``--overwrite``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tailgraph.errors import DataError

__all__ = ["claim_file", "write_text_atomic", "write_json_atomic", "build_folder_atomically"]

T = TypeVar("T")


def claim_file(path: str | os.PathLike, overwrite: bool, field: str = "output") -> Path:
    """Check that ``path`` may be written: not a directory, and absent unless ``overwrite``."""
    p = Path(path)
    if p.is_dir():
        raise DataError("is a directory, expected a file name", file=str(p), field=field)
    if p.exists() and not overwrite:
        raise DataError("exists (pass --overwrite to replace it)", file=str(p), field=field)
    if p.parent.exists() and not p.parent.is_dir():
        raise DataError("parent is not a directory", file=str(p), field=field)
    return p


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary name beside ``path`` and rename it into place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def build_folder_atomically(
    out: str | os.PathLike, build: Callable[[Path], T], overwrite: bool = False
) -> T:
    """Run ``build(tmp)`` on a fresh temporary folder beside ``out``, then rename it to ``out``.

    An existing non-empty ``out`` is an error unless ``overwrite``, in which case it is replaced
    only after ``build`` succeeded. On failure the temporary folder is removed.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError("exists and is not a folder", file=str(out), field="out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(
            "exists and is not empty (pass --overwrite to replace it)", file=str(out), field="out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        result = build(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file and an atomic rename (keys sorted)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
