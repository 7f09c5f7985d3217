"""Shared test settings: small thread count (CI has 2 cores), deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shared data sit beside the repository (../shared); TAILGRAPH_SHARED overrides that.
SHARED = Path(os.environ.get("TAILGRAPH_SHARED", REPO_ROOT.parent / "shared"))
RS_VG = SHARED / "data" / "rs-vg"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
