"""HDF5 files that hang or crash the HDF5 library are refused before a reader opens them: one
line naming the file, exit 2, in bounded time (found by the fuzz campaign: 8 bytes inserted into
a ground-truth file's ``meta`` attribute made ``evaluate`` loop forever, deaf to SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tailgraph.cli import main as tailgraph_main
from tailgraph.errors import DataError
from tailgraph.io import h5probe

from ..helpers import write_interchange_case


def _h5(tmp_path):
    case = write_interchange_case(tmp_path, 0, 4, "sgdet")
    assert tailgraph_main(["convert", str(case / "gt.json"), str(case / "gt.h5")]) == 0
    return case


def test_a_structure_walk_that_never_ends_is_refused_in_bounded_time(tmp_path, monkeypatch):
    case = _h5(tmp_path)
    monkeypatch.setenv(h5probe.PROBE_ENV, "1")
    monkeypatch.setattr(h5probe, "_walk", lambda path: time.sleep(3600))  # what the child runs
    t0 = time.monotonic()
    with pytest.raises(DataError, match="did not finish reading its structure in 1 s") as err:
        h5probe.probe_h5(case / "gt.h5")
    assert time.monotonic() - t0 < 10 and err.value.file == str(case / "gt.h5")


def test_a_crash_of_the_library_is_an_error_not_the_end_of_the_process(tmp_path, monkeypatch):
    case = _h5(tmp_path)
    monkeypatch.setattr(h5probe, "_walk", lambda path: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(DataError, match=r"crashed reading it \(SIGSEGV\)"):
        h5probe.probe_h5(case / "gt.h5")


def test_a_sound_file_and_a_python_level_error_pass_to_the_reader(tmp_path):
    case = _h5(tmp_path)
    h5probe.probe_h5(case / "gt.h5")  # sound: no error
    (case / "bad.h5").write_bytes(b"not hdf5 at all")
    h5probe.probe_h5(case / "bad.h5")  # h5py raises in the child: the reader reports it


def test_the_fuzz_campaigns_hanging_ground_truth_is_one_line(tmp_path):
    """The mutation the campaign found: 8 bytes inserted into the meta attribute's string."""
    case = _h5(tmp_path)
    raw = (case / "gt.h5").read_bytes()
    at = raw.index(b'"kind": "') + len(b'"kind": "')
    (case / "gt.h5").write_bytes(raw[:at] + bytes.fromhex("385c394deb05c37f") + raw[at:])
    args = ["evaluate", "--protocol", "vg", "--mode", "sgdet", "--gt", str(case / "gt.h5")]
    args += ["--pred", str(case / "pred.json"), "--json", str(tmp_path / "m.json")]
    r = subprocess.run(
        [sys.executable, "-m", "tailgraph.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, h5probe.PROBE_ENV: "3"},
    )
    assert r.returncode == 2, r.stderr[-500:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "gt.h5" in lines[0], lines
    assert not (tmp_path / "m.json").exists()
