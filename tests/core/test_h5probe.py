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


def _as_older_versions_wrote_it(path) -> None:
    """Rewrite a ground-truth file as tailgraph wrote it before it chose the 1.8 layout: HDF5's
    oldest layout (no checksums), the meta a variable-length string in the global heap."""
    import h5py

    with h5py.File(path, "r") as f:
        meta = bytes(f.attrs["meta"]).decode()
        arrays = {name: f[name][()] for name in f}
    with h5py.File(path, "w", libver="earliest") as f:
        f.attrs["meta"] = meta
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr)


def _evaluate_with_the_campaigns_mutation(tmp_path, probe_s: str, timeout: float, old=False):
    """The mutation the campaign found: 8 bytes inserted into the meta attribute's string."""
    case = _h5(tmp_path)
    if old:
        _as_older_versions_wrote_it(case / "gt.h5")
    raw = (case / "gt.h5").read_bytes()
    at = raw.index(b'"kind": "') + len(b'"kind": "')
    (case / "gt.h5").write_bytes(raw[:at] + bytes.fromhex("385c394deb05c37f") + raw[at:])
    args = ["evaluate", "--protocol", "vg", "--mode", "sgdet", "--gt", str(case / "gt.h5")]
    args += ["--pred", str(case / "pred.json"), "--json", str(tmp_path / "m.json")]
    r = subprocess.run(
        [sys.executable, "-m", "tailgraph.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, h5probe.PROBE_ENV: probe_s},
    )
    assert r.returncode == 2, r.stderr[-500:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "gt.h5" in lines[0], lines
    assert not (tmp_path / "m.json").exists()
    return lines[0]


def test_the_fuzz_campaigns_hanging_ground_truth_is_one_line(tmp_path):
    """In HDF5's oldest layout (no checksums: files of older versions or other tools) the
    damage sends the library into a loop; the probe refuses the file."""
    line = _evaluate_with_the_campaigns_mutation(tmp_path, "3", 120, old=True)
    assert "did not finish reading its structure in 3 s" in line


def test_the_same_damage_to_a_file_tailgraph_writes_is_a_checksum_error_at_once(tmp_path):
    """Files tailgraph writes carry metadata checksums (``H5_LIBVER``): the same damage is an
    ordinary read error, long before a probe limit of 10 minutes."""
    line = _evaluate_with_the_campaigns_mutation(tmp_path, "600", 90)
    assert "checksum" in line


@pytest.mark.parametrize("classes", [40, 6000])  # the meta in the object header / dense storage
def test_any_damaged_byte_of_the_meta_text_is_an_error_not_other_class_names(tmp_path, classes):
    import numpy as np

    from tailgraph.io.binformat import ground_truth_arrays, read_ground_truth_binary, write_binary

    graph = {
        "image_id": 0,
        "width": 10,
        "height": 10,
        "boxes": np.array([[0, 0, 5, 5], [1, 1, 6, 6]], np.float32),
        "labels": np.array([1, 2]),
        "relations": np.array([[0, 1, 1]]),
    }
    names = ["__background__", *[f"class-{i:05d}" for i in range(1, classes + 1)]]
    path = tmp_path / "gt.h5"
    meta = {"object_classes": names, "predicates": ["__background__", "on"]}
    write_binary(path, "ground_truth", ground_truth_arrays([graph]), meta)
    assert read_ground_truth_binary(path)[1]["object_classes"] == names
    raw = path.read_bytes()
    start = raw.index(b"class-00001")
    for at in range(start, start + 40 * 12, 12):  # a digit of each of 40 names
        damaged = bytearray(raw)
        damaged[at + 10] = ord("7") if damaged[at + 10] != ord("7") else ord("3")
        path.write_bytes(bytes(damaged))
        with pytest.raises(DataError, match="checksum"):
            read_ground_truth_binary(path)


def _one_graph_arrays():
    import numpy as np

    from tailgraph.io.binformat import ground_truth_arrays

    graph = {
        "image_id": "img-0",
        "width": 100,
        "height": 80,
        "boxes": np.array([[0, 0, 50, 50], [10, 10, 60, 60], [5, 5, 9, 9]], np.float32),
        "labels": np.array([1, 2, 1]),
        "relations": np.array([[0, 1, 1], [2, 1, 1]]),
    }
    return ground_truth_arrays([graph]), {
        "object_classes": ["__background__", "a", "b"],
        "predicates": ["__background__", "on"],
    }


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
@pytest.mark.parametrize("field", ["boxes", "labels", "relations", "widths", "image_ids"])
def test_a_damaged_byte_of_array_data_is_an_error_naming_the_array(tmp_path, suffix, field):
    """Raw array data carry no checksum in either container; the CRC-32 the writer records in
    ``meta`` turns a changed value (a label 1 -> 2, a box corner, an image id) into an error
    naming the array, where it used to read back as the other value."""
    import numpy as np

    from tailgraph.io.binformat import read_ground_truth_binary, write_binary

    arrays, meta = _one_graph_arrays()
    path = tmp_path / f"gt{suffix}"
    write_binary(path, "ground_truth", arrays, meta)
    raw = path.read_bytes()
    if field == "image_ids":  # UTF-8 in HDF5, UCS-4 in a .npy
        needle = "img-0".encode("utf-8" if suffix == ".h5" else "utf-32-le")
    else:
        needle = np.ascontiguousarray(arrays[field]).tobytes()
    at = raw.index(needle)
    damaged = bytearray(raw)
    # a byte that stays a valid value: a label 1 -> 2, an id 'img-0' -> 'img-1', a width 100 -> 101
    damaged[at if field != "image_ids" else at + len(needle) * 4 // 5] += 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match="checksum|CRC-32") as err:
        read_ground_truth_binary(path)
    assert err.value.file == str(path) and err.value.field == field


def test_verify_false_and_files_without_checksums_read_the_stored_values(tmp_path):
    import numpy as np

    from tailgraph.io.binformat import BinaryReader, write_binary

    arrays, meta = _one_graph_arrays()
    path = tmp_path / "gt.h5"
    write_binary(path, "ground_truth", arrays, meta)
    raw = bytearray(path.read_bytes())
    raw[raw.index(np.ascontiguousarray(arrays["labels"]).tobytes())] += 1  # label 1 -> 2
    path.write_bytes(bytes(raw))
    with BinaryReader(path, kind="ground_truth", verify=False) as r:
        assert r.meta["array_crc32"]["labels"] >= 0
        assert list(next(r.chunks())[0]["labels"]) == [2, 2, 1]
    # a file from before the checksums (no 'array_crc32' in meta) is read as it is
    from tailgraph.io import binformat

    def without(arr):
        return None

    old = binformat.array_crc32
    binformat.array_crc32 = without
    try:
        write_binary(path, "ground_truth", arrays, meta)
    finally:
        binformat.array_crc32 = old
    with BinaryReader(path, kind="ground_truth") as r:
        assert r.meta["array_crc32"] == {} and list(next(r.chunks())[0]["labels"]) == [1, 2, 1]


@pytest.mark.parametrize("bad", [[1, 2], {"labels": -1}, {"labels": 2**32}, {"labels": True}])
def test_a_malformed_checksum_record_is_an_error(tmp_path, bad):
    from tailgraph.io.binformat import read_ground_truth_binary, write_binary

    arrays, meta = _one_graph_arrays()
    path = tmp_path / "gt.npz"
    write_binary(path, "ground_truth", arrays, meta)
    import json
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with np.load(path) as f:
        full = json.loads(str(f["__meta__"][()]))
    full["array_crc32"] = bad
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(json.dumps(full)))
    members["__meta__.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(DataError, match="array_crc32|checksum") as err:
        read_ground_truth_binary(path)
    assert err.value.file == str(path)
