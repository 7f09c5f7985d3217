"""Shared test settings: small thread count (CI has 2 cores), deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# CI has 2 cores. Run by pytest-xdist (``make test``: two worker processes), each worker and the
# command-line subprocesses its tests start use one thread, so that the processes do not
# oversubscribe the cores; a plain ``pytest`` uses both.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
else:
    torch.set_num_threads(2)

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shared data sit beside the repository (../shared); TAILGRAPH_SHARED overrides that.
SHARED = Path(os.environ.get("TAILGRAPH_SHARED", REPO_ROOT.parent / "shared"))
RS_VG = SHARED / "data" / "rs-vg"


def needs_shared_data(path: Path = RS_VG):
    """Mark a test that reads the shared data set at ``path``: it runs when the data are there,
    is skipped with a one-line reason when they are not (a clone of the repository alone), and
    fails under ``CI=true``, where the data must be present."""
    import functools

    if path.exists():
        return lambda fn: fn
    reason = f"shared data not found at {path} (set TAILGRAPH_SHARED)"
    if os.environ.get("CI", "").lower() != "true":
        return pytest.mark.skip(reason=reason)

    def fail_instead(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            pytest.fail(f"CI=true: {reason}")

        return wrapper

    return fail_instead


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
