"""A corrupt HDF5 file can hang or crash the HDF5 library itself: an attribute or object header
whose sizes were damaged sends it into a loop that never returns (in C, so neither Ctrl-C nor
SIGTERM ends it), and other damage ends the process with a segmentation fault. Neither can be
caught in Python.

:func:`probe_h5` therefore walks a file's structure — every group, dataset and attribute, each
dataset's shape, type, layout and first element — in a forked child process before the reader
opens it. A child that does not finish within ``TAILGRAPH_H5_PROBE_S`` seconds (default 30) is
killed and the file refused; a child killed by a signal means the library crashed on it. Both
are one :class:`~tailgraph.errors.DataError` naming the file. A child that finishes, with or
without a Python-level error, lets the caller open the file and report its own error.
Where ``os.fork`` does not exist the probe is skipped.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

from tailgraph.errors import DataError

__all__ = ["probe_h5", "PROBE_ENV"]

PROBE_ENV = "TAILGRAPH_H5_PROBE_S"


def _walk(path: str) -> None:
    import h5py

    with h5py.File(path, "r") as f:

        def visit(obj) -> None:
            for key in obj.attrs.keys():
                obj.attrs[key]
            if isinstance(obj, h5py.Dataset):
                _ = obj.shape, obj.dtype, obj.chunks, obj.id.get_offset()
                if obj.size:
                    obj[(0,) * obj.ndim] if obj.ndim else obj[()]

        visit(f)
        f.visititems(lambda _name, obj: visit(obj))


def _limit() -> float:
    raw = os.environ.get(PROBE_ENV, "30")
    try:
        value = float(raw)
    except ValueError:
        raise DataError(f"expected seconds, got {raw!r}", field=PROBE_ENV) from None
    if not 0 < value <= 3600:
        raise DataError(f"{value} is outside (0, 3600]", field=PROBE_ENV)
    return value


def probe_h5(path: str | os.PathLike) -> None:
    """Refuse ``path`` when the HDF5 library hangs or crashes walking its structure."""
    if not hasattr(os, "fork"):
        return
    path = str(Path(path))
    limit = _limit()
    pid = os.fork()
    if pid == 0:  # the child: walk, then leave without running the parent's exit handlers
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            faulthandler.disable()  # a crash is the parent's to report
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)  # the library's own messages are not the command's output
            os.dup2(null, 2)
            _walk(path)
        except BaseException:
            code = 3  # a Python-level error: the caller's own open reports it
        os._exit(code)
    deadline = time.monotonic() + limit
    delay = 0.001
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise DataError(
                    f"the HDF5 library did not finish reading its structure in {limit:g} s "
                    f"(corrupt: a loop in its metadata?; {PROBE_ENV} sets the limit)",
                    file=path,
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    except BaseException:
        try:  # an interrupt while waiting: the child goes with the parent
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise DataError(f"the HDF5 library crashed reading it ({name}): corrupt", file=path)
