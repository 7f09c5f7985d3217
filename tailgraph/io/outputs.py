"""Outputs that are never partial and never clobbered by surprise.

Every file or folder the command line writes goes to a temporary name beside its destination
and is renamed into place once complete; a failure removes the temporary and leaves the
destination as it was. An existing destination is replaced only when the caller passes
``overwrite`` (the commands' ``--overwrite``).

Temporaries are named ``.NAME.tmp-PID`` (:func:`temporary_name`); one left behind by a process
that was killed (SIGKILL, power loss) is removed by the next write to ``NAME``
(:func:`remove_stale_temporaries`). HDF5 files are built in memory and written with Python's
file I/O (:func:`write_h5_atomic`), so a full disk is an ``OSError`` naming the file, never an
error inside the HDF5 library (whose failed close can crash the process).
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tailgraph.errors import DataError

__all__ = [
    "claim_file",
    "write_text_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_h5_atomic",
    "build_folder_atomically",
    "temporary_name",
    "remove_stale_temporaries",
    "naming_errors",
    "OUTPUT_ERRNOS",
    "output_error_line",
]

T = TypeVar("T")


def _check_parents(path: Path, field: str = "out") -> None:
    """Every existing ancestor of ``path`` is a folder (not a regular file)."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(
                    f"its parent {parent} is a file, not a folder", file=str(path), field=field
                )
            return


def claim_file(path: str | os.PathLike, overwrite: bool, field: str = "output") -> Path:
    """Check that ``path`` may be written: not a directory, and absent unless ``overwrite``."""
    p = Path(path)
    _check_parents(p, field)
    if p.is_dir():
        raise DataError("is a directory, expected a file name", file=str(p), field=field)
    if p.exists() and not overwrite:
        raise DataError("exists (pass --overwrite to replace it)", file=str(p), field=field)
    if p.parent.exists() and not p.parent.is_dir():
        raise DataError("parent is not a directory", file=str(p), field=field)
    return p


@contextmanager
def naming_errors(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise an ``OSError`` without a file name (a failed ``write``) as one naming ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise


def temporary_name(path: str | os.PathLike, suffix: str = "") -> Path:
    """``.NAME.tmp-PID[suffix]`` beside ``path``: this process's temporary for ``path``."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}{suffix}")


def _process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from Linux ``/proc``: field 22
    of ``/proc/PID/stat`` (clock ticks after boot) plus the boot time of ``/proc/stat``. (The
    timestamps of ``/proc/PID`` itself are those of its first lookup, not of the start.)"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])  # after "pid (comm) "
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _process_started_after(pid: int, mtime: float) -> bool | None:
    """Whether process ``pid`` started after ``mtime``; None if unknown."""
    start = _process_start_time(pid)
    return None if start is None else start > mtime + 2.0  # btime is whole seconds


def _is_stale(pid: int, mtime: float) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True  # the process that made it is gone
    except PermissionError:
        return False  # alive, another user's
    # alive: a reused pid when the process is younger than the temporary
    return bool(_process_started_after(pid, mtime))


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove ``.NAME.tmp-PID*`` / ``.NAME.old-PID`` beside ``path`` whose process is gone.

    A temporary of a process that still runs (another command writing the same output) is
    left alone. Returns what was removed.
    """
    p = Path(path)
    parent = p.parent
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(p.name)}\.(?:tmp|old)-(\d+)")
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        m = pattern.match(entry.name)
        if not m:
            continue
        try:
            mtime = entry.lstat().st_mtime
        except OSError:
            continue
        if not _is_stale(int(m.group(1)), mtime):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def write_bytes_atomic(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to a temporary name beside ``path`` and rename it into place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(p)
    tmp = temporary_name(p)
    try:
        with naming_errors(p), open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary name beside ``path`` and rename it into place."""
    return write_bytes_atomic(path, text.encode("utf-8"))


# HDF5's 1.8 file layout: a version-2 superblock and version-2 object headers, each with a
# checksum, so damaged metadata is a read error instead of a loop or a crash inside the
# library (``benchmarks/bench_h5_corruption.py``); read by every HDF5 since 1.8 (2008).
H5_LIBVER = "v108"


def write_h5_atomic(path: str | os.PathLike, fill: Callable[[Any], None], **kwargs: Any) -> Path:
    """Build an HDF5 file in memory with ``fill(h5py.File)`` and write it atomically.

    ``kwargs`` go to ``h5py.File`` (e.g. ``track_order``); the layout is :data:`H5_LIBVER`
    unless ``libver`` is given.
    """
    import h5py

    kwargs.setdefault("libver", H5_LIBVER)
    buf = io.BytesIO()
    with h5py.File(buf, "w", **kwargs) as f:
        fill(f)
    return write_bytes_atomic(path, buf.getbuffer())


def build_folder_atomically(
    out: str | os.PathLike, build: Callable[[Path], T], overwrite: bool = False
) -> T:
    """Run ``build(tmp)`` on a fresh temporary folder beside ``out``, then rename it to ``out``.

    An existing non-empty ``out`` is an error unless ``overwrite``, in which case it is replaced
    only after ``build`` succeeded. On failure the temporary folder is removed.
    """
    out = Path(out)
    _check_parents(out)
    if out.exists() and not out.is_dir():
        raise DataError("exists and is not a folder", file=str(out), field="out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(
            "exists and is not empty (pass --overwrite to replace it)", file=str(out), field="out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    tmp = temporary_name(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with naming_errors(out):
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
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


# errors of writing an output, reported as one line naming the path
OUTPUT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EFBIG: "file too large (a file-size limit?)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a part of the path is a file, not a folder",
}


def output_error_line(exc: OSError) -> str | None:
    """One line for an I/O error of writing an output (``cannot write PATH: why``), or None
    when ``exc`` is not one. A temporary's name stands for the output it was to become."""
    code = exc.errno
    if code is None and isinstance(exc.__cause__, OSError):
        code = exc.__cause__.errno
    if code not in OUTPUT_ERRNOS:
        return None
    where = "an output"
    if exc.filename is not None:
        where = re.sub(r"(^|/)\.([^/]+?)\.tmp-\d+[^/]*", r"\1\2", str(exc.filename))
    return f"cannot write {where}: {OUTPUT_ERRNOS[code]}"
