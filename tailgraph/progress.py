"""One progress bar per long phase (generation, feature cache, prediction, evaluation).

Bars go to stderr and are shown only on a terminal (a log file or a pipe gets none);
``TAILGRAPH_PROGRESS=1`` forces them on, ``TAILGRAPH_PROGRESS=0`` off.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any

__all__ = ["progress", "progress_enabled", "track"]


def progress_enabled() -> bool:
    """Whether bars are drawn: ``TAILGRAPH_PROGRESS`` if set, else whether stderr is a TTY."""
    flag = os.environ.get("TAILGRAPH_PROGRESS")
    if flag is not None:
        return flag.strip().lower() not in ("0", "false", "no", "off", "")
    return sys.stderr.isatty()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


@contextmanager
def progress(total: int | None, desc: str, unit: str = "it") -> Any:
    """A bar of ``total`` steps named ``desc`` (a no-op object when bars are off)."""
    if not progress_enabled():
        yield _Silent()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True)
    try:
        yield bar
    finally:
        bar.close()


def track(iterable, desc: str, total: int | None = None, unit: str = "it", weight=None):
    """Iterate ``iterable`` under a bar (``weight(item)``: steps an item counts, default 1)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with progress(total, desc, unit) as bar:
        for item in iterable:
            yield item
            bar.update(weight(item) if weight is not None else 1)
