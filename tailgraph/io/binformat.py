"""tailgraph's binary interchange files (``.h5`` / ``.npz``): the JSON files' content as flat
arrays with per-image offsets, for outputs too large for JSON.

Every file holds a JSON ``meta`` record (HDF5: the root attribute ``meta``; ``.npz``: the
member ``__meta__``) with ``"format": "tailgraph-sg-bin/1"`` and ``"kind"``, and these arrays
(``N`` images, ``B`` boxes, ``P`` pairs, ``G`` relations in all; image ``i`` owns rows
``offsets[i]:offsets[i+1]`` of each ragged array):

``kind = "predictions"``
    ``image_ids [N]`` (int64 or UTF-8 strings), ``box_offsets [N+1]``, ``boxes [B, 4]``
    float32, ``labels [B]`` int64, ``label_scores [B]`` float32, ``pair_offsets [N+1]``,
    ``pairs [P, 2]`` int64 (indices into the image's own boxes), ``predicate_scores [P, R]``
    float32.
``kind = "ground_truth"``
    meta also has ``protocol``, ``object_classes``, ``predicates``; arrays ``image_ids``,
    ``widths [N]``, ``heights [N]``, ``box_offsets``, ``boxes``, ``labels``,
    ``rel_offsets [N+1]``, ``relations [G, 3]`` int64 and, for video frames, ``video_ids`` /
    ``frame_ids [N]``.
``kind = "vidvrd_results"`` / ``"vidvrd_ground_truth"``
    VidVRD relation instances per video: meta ``names`` (the triplet vocabulary); arrays
    ``video_ids [V]``, ``instance_offsets [V+1]``, ``triplets [M, 3]`` int64 (indices into
    ``names``), ``durations [M, 2]`` int64, ``traj_offsets [M+1]``, ``sub_traj [F, 4]`` /
    ``obj_traj [F, 4]`` float64 and, for results, ``scores [M]`` float64.

Reading streams: :class:`BinaryReader` hands out chunks of images whose arrays are read
(memory-mapped where the file stores them contiguously, which tailgraph's writer always
does), so peak memory is bounded by a chunk, not by the file. Everything is validated at the
border with the same one-line errors as the JSON readers (file, sample, field). Writes go to a
temporary name and are renamed.

Integrity: the writer records a CRC-32 of every array's bytes in the meta record
(``"array_crc32": {name: crc}``; a text array's CRC is over its JSON list), and ``meta`` is
itself covered (HDF5: ``meta_sha256``; ``.npz``: the zip member's CRC). Raw array data are
otherwise checked by neither format, so a damaged byte would read back as another value; the
reader verifies every listed array before it hands out the first chunk (``verify=False`` skips
it; files written before the checksums were added have none and are read unverified).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.io.checksums import CRC_BLOCK, array_crc32, text_crc32, update_crc32
from tailgraph.io.h5probe import probe_h5
from tailgraph.io.outputs import (
    naming_errors,
    remove_stale_temporaries,
    temporary_name,
    write_h5_atomic,
)
from tailgraph.ops.boxes import boxes_far_outside

__all__ = [
    "BIN_FORMAT",
    "BINARY_SUFFIXES",
    "is_binary",
    "BinaryReader",
    "write_binary",
    "predictions_arrays",
    "ground_truth_arrays",
    "vidvrd_arrays",
    "read_vidvrd_binary",
    "read_ground_truth_binary",
]

BIN_FORMAT = "tailgraph-sg-bin/1"
BINARY_SUFFIXES = (".h5", ".hdf5", ".npz")

# name -> (ndim, trailing dims, dtype kind ('i' integer, 'f' float, 'id' ids))
LAYOUTS: dict[str, dict[str, tuple]] = {
    "predictions": {
        "image_ids": (1, (), "id"),
        "box_offsets": (1, (), "i"),
        "boxes": (2, (4,), "f"),
        "labels": (1, (), "i"),
        "label_scores": (1, (), "f"),
        "pair_offsets": (1, (), "i"),
        "pairs": (2, (2,), "i"),
        "predicate_scores": (2, None, "f"),
    },
    "ground_truth": {
        "image_ids": (1, (), "id"),
        "widths": (1, (), "i"),
        "heights": (1, (), "i"),
        "box_offsets": (1, (), "i"),
        "boxes": (2, (4,), "f"),
        "labels": (1, (), "i"),
        "rel_offsets": (1, (), "i"),
        "relations": (2, (3,), "i"),
    },
    "vidvrd_results": {
        "video_ids": (1, (), "id"),
        "instance_offsets": (1, (), "i"),
        "triplets": (2, (3,), "i"),
        "scores": (1, (), "f"),
        "durations": (2, (2,), "i"),
        "traj_offsets": (1, (), "i"),
        "sub_traj": (2, (4,), "f"),
        "obj_traj": (2, (4,), "f"),
    },
}
LAYOUTS["vidvrd_ground_truth"] = {
    k: v for k, v in LAYOUTS["vidvrd_results"].items() if k != "scores"
}
OPTIONAL = {"ground_truth": ("video_ids", "frame_ids")}
# ragged array -> its offsets (per image / video / instance)
RAGGED = {
    "boxes": "box_offsets",
    "labels": "box_offsets",
    "label_scores": "box_offsets",
    "pairs": "pair_offsets",
    "predicate_scores": "pair_offsets",
    "relations": "rel_offsets",
    "triplets": "instance_offsets",
    "scores": "instance_offsets",
    "durations": "instance_offsets",
    "sub_traj": "traj_offsets",
    "obj_traj": "traj_offsets",
}


def is_binary(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a binary interchange file (by extension)."""
    return str(path).lower().endswith(BINARY_SUFFIXES)


# ---------------------------------------------------------------------------- storage
# what zipfile / numpy raise on a corrupt, truncated or exotic .npz (encrypted members,
# unsupported compression or zip versions)
_ZIP_ERRORS = (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError)


def _finite_sum(a: np.ndarray) -> bool:
    """All values finite (one pass: a NaN or infinity makes the sum non-finite)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.isfinite(a.sum()))


class _MappedStore:
    """What both stores share: dropping the pages of rows already consumed."""

    _regions: dict[str, tuple]

    def release(self, name: str, start: int, stop: int) -> None:
        """Drop the pages of rows ``start:stop`` of a memory-mapped array from this process
        (they are re-read from the file if touched again), so resident memory stays bounded
        by a chunk while a large file is streamed."""
        region = self._regions.get(name)
        if region is None or stop <= start or not hasattr(mmap, "MADV_DONTNEED"):
            return
        mm, off, row = region
        page = mmap.PAGESIZE
        a = (off + start * row + page - 1) // page * page  # whole pages inside the range only
        b = (off + stop * row) // page * page
        if b > a:
            mm.madvise(mmap.MADV_DONTNEED, a, b - a)


def _h5_guard(method):
    """HDF5's own errors from a corrupt file (``OSError``, ``RuntimeError``, ``KeyError`` ...)
    become the project's error naming the file."""
    import functools

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except DataError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise DataError(
                f"not a readable HDF5 file (corrupt or truncated?): {exc}", file=self.path
            ) from None

    return run


class _H5Store(_MappedStore):
    @_h5_guard
    def __init__(self, path: str) -> None:
        import h5py

        self.path = path
        probe_h5(path)
        try:
            self.f = h5py.File(path, "r")
        except (OSError, ValueError) as exc:
            raise DataError(f"not a readable HDF5 file: {exc}", file=path) from None
        raw = self.f.attrs.get("meta")
        if raw is None:
            raise DataError("no 'meta' attribute: not a tailgraph binary file", file=path)
        digest = self.f.attrs.get("meta_sha256")
        if digest is not None and (
            not isinstance(raw, bytes) or _digest(raw) != bytes(digest).decode(errors="replace")
        ):
            raise DataError("damaged: the meta attribute does not match its checksum", file=path)
        self.meta_raw = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._maps: dict[str, np.ndarray | None] = {}
        self._regions: dict[str, tuple] = {}

    @_h5_guard
    def names(self) -> list[str]:
        return list(self.f.keys())

    @_h5_guard
    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        import h5py

        d = self.f[name]
        if not isinstance(d, h5py.Dataset):
            raise DataError("expected a dataset, found a group", file=self.path, field=name)
        return tuple(d.shape), d.dtype

    @_h5_guard
    def _mapped(self, name: str) -> np.ndarray | None:
        if name not in self._maps:
            d = self.f[name]
            arr = None
            off = d.id.get_offset()
            if (
                off is not None
                and d.chunks is None
                and d.compression is None
                and d.dtype.kind in "iuf"
                and d.size
            ):
                fobj = open(self.path, "rb")
                try:
                    mm = mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ)
                finally:
                    fobj.close()
                need = off + d.size * d.dtype.itemsize
                if need <= len(mm):
                    arr = np.frombuffer(mm, dtype=d.dtype, count=d.size, offset=off).reshape(
                        d.shape
                    )
                    self._regions[name] = (mm, off, arr.strides[0] if arr.ndim else 0)
            self._maps[name] = arr
        return self._maps[name]

    @_h5_guard
    def read(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        m = self._mapped(name)
        if m is not None:
            return m[start:stop]
        d = self.f[name]
        try:
            if d.dtype.kind in "OSU":
                vals = d.asstr()[start:stop] if d.dtype.kind != "U" else d[start:stop]
                return np.asarray(vals, dtype=object)
            return d[start:stop]
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"cannot read ({exc})", file=self.path, field=name) from None

    def close(self) -> None:
        self._maps.clear()
        self.f.close()


class _NpzStore(_MappedStore):
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.z = zipfile.ZipFile(path)
        except _ZIP_ERRORS as exc:
            raise DataError(f"not a readable .npz file: {exc}", file=path) from None
        self.members = {n[:-4]: n for n in self.z.namelist() if n.endswith(".npy") and "/" not in n}
        if "__meta__" not in self.members:
            raise DataError("no '__meta__' member: not a tailgraph binary file", file=path)
        meta = self._load_small("__meta__")
        if meta.dtype.kind != "U" or meta.ndim != 0:
            raise DataError("'__meta__' must be a text scalar", file=path, field="__meta__")
        self.meta_raw = str(meta[()])
        self._headers: dict[str, tuple] = {}
        self._maps: dict[str, np.ndarray | None] = {}
        self._regions: dict[str, tuple] = {}

    def names(self) -> list[str]:
        return [n for n in self.members if n != "__meta__"]

    def _header(self, name: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
        if name not in self._headers:
            info = self.z.getinfo(self.members[name])
            try:
                with self.z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    header_len = f.tell()
            except _ZIP_ERRORS as exc:
                raise DataError(
                    f"not a valid .npy member ({exc})", file=self.path, field=name
                ) from None
            if fortran and len(shape) > 1:
                raise DataError("Fortran-ordered arrays are not read", file=self.path, field=name)
            if dtype.hasobject:
                raise DataError("object arrays are not read", file=self.path, field=name)
            self._headers[name] = (tuple(shape), dtype, info.compress_type, header_len)
        shape, dtype, ctype, hl = self._headers[name]
        return shape, dtype, ctype, hl

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        shape, dtype, _, _ = self._header(name)
        return shape, dtype

    def _load_small(self, name: str) -> np.ndarray:
        try:
            with self.z.open(self.members[name]) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except _ZIP_ERRORS as exc:
            raise DataError(
                f"not a valid .npy member ({exc})", file=self.path, field=name
            ) from None

    def _mapped(self, name: str) -> np.ndarray | None:
        if name not in self._maps:
            shape, dtype, ctype, hl = self._header(name)
            arr = None
            if ctype == zipfile.ZIP_STORED and dtype.kind in "iuf":
                info = self.z.getinfo(self.members[name])
                with open(self.path, "rb") as fobj:
                    fobj.seek(info.header_offset)
                    local = fobj.read(30)
                    if len(local) == 30 and local[:4] == b"PK\x03\x04":
                        n_name = int.from_bytes(local[26:28], "little")
                        n_extra = int.from_bytes(local[28:30], "little")
                        data_off = info.header_offset + 30 + n_name + n_extra + hl
                        count = int(np.prod(shape)) if shape else 1
                        mm = mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ)
                        if count and data_off + count * dtype.itemsize <= len(mm):
                            arr = np.frombuffer(mm, dtype=dtype, count=count, offset=data_off)
                            arr = arr.reshape(shape)
                            self._regions[name] = (mm, data_off, arr.strides[0])
            self._maps[name] = arr
        return self._maps[name]

    def read(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        m = self._mapped(name)
        if m is not None:
            return m[start:stop]
        shape, dtype, _, hl = self._header(name)
        if not shape:
            return self._load_small(name)
        n = shape[0]
        a, b, _ = slice(start, stop).indices(n)
        row = int(np.prod(shape[1:])) * dtype.itemsize if len(shape) > 1 else dtype.itemsize
        try:
            with self.z.open(self.members[name]) as f:
                f.seek(hl + a * row)  # compressed members decompress up to here
                buf = f.read(max(0, b - a) * row)
        except _ZIP_ERRORS as exc:
            raise DataError(f"cannot read ({exc})", file=self.path, field=name) from None
        if len(buf) != max(0, b - a) * row:
            raise DataError("truncated array data", file=self.path, field=name)
        return np.frombuffer(buf, dtype=dtype).reshape((max(0, b - a),) + shape[1:])

    def close(self) -> None:
        self._maps.clear()
        self.z.close()


def _open_store(path: str):
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", file=path)
    if not p.is_file():
        raise DataError("expected a file, found a directory or special file", file=path)
    if str(path).lower().endswith(".npz"):
        return _NpzStore(path)
    return _H5Store(path)


# ---------------------------------------------------------------------------- reader
class BinaryReader:
    """A validated binary interchange file, read in chunks of images (or videos).

    Args:
        path: ``.h5`` / ``.hdf5`` / ``.npz``.
        kind: the expected ``kind`` (``None``: any).
        num_classes: labels must be ``< num_classes`` (predictions / ground truth).
        num_predicates: predictions: score columns must equal it; ground truth: predicates
            must be ``< num_predicates``.
        check_scores: refuse NaN / inf predicate scores while reading (an evaluator that
            checks them itself on its single pass turns this off).
        verify: check every array against the CRC-32 the writer recorded in ``meta``
            (one pass over the file, in bounded memory, before the first chunk).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        kind: str | None = None,
        num_classes: int | None = None,
        num_predicates: int | None = None,
        check_scores: bool = True,
        verify: bool = True,
    ) -> None:
        self.path = str(path)
        self.store = _open_store(self.path)
        try:
            self._init(kind, num_classes, num_predicates, check_scores)
            if verify:
                self._verify()
        except BaseException:
            self.store.close()
            raise

    def _init(self, kind, num_classes, num_predicates, check_scores) -> None:
        p = self.path
        try:
            meta = json.loads(self.store.meta_raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"'meta' is not valid JSON: {exc}", file=p, field="meta") from None
        if not isinstance(meta, dict) or meta.get("format") != BIN_FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else meta
            raise DataError(
                f'expected "format": "{BIN_FORMAT}", got {got!r}', file=p, field="format"
            )
        self.kind = meta.get("kind")
        if self.kind not in LAYOUTS:
            raise DataError(
                f"unknown kind {self.kind!r}; expected one of {sorted(LAYOUTS)}",
                file=p,
                field="kind",
            )
        if kind is not None and self.kind != kind:
            raise DataError(f"expected a {kind} file, got {self.kind}", file=p, field="kind")
        self.meta = meta
        self.num_classes, self.num_predicates = num_classes, num_predicates
        self.check_scores = check_scores
        layout = LAYOUTS[self.kind]
        names = set(self.store.names())
        self.shapes: dict[str, tuple[int, ...]] = {}
        for name, (ndim, trail, dkind) in layout.items():
            if name not in names:
                raise DataError(f"missing array '{name}'", file=p, field=name)
            self._check_array(name, ndim, trail, dkind)
        for name in OPTIONAL.get(self.kind, ()):
            if name in names:
                self._check_array(name, 1, (), "id")
        ids_name = "video_ids" if self.kind.startswith("vidvrd") else "image_ids"
        self.ids = self._ids(ids_name)
        self.extra_ids = {
            name[:-1]: self._ids(name)
            for name in OPTIONAL.get(self.kind, ())
            if name in self.shapes
        }
        self.n = len(self.ids)
        seen: set = set()
        for i in self.ids:
            if i in seen:
                raise DataError(f"duplicate {ids_name[:-1]}", file=p, sample=i, field=ids_name)
            seen.add(i)
        self.offsets: dict[str, np.ndarray] = {}
        for name in layout:
            if name.endswith("_offsets"):
                self.offsets[name] = self._offsets(name)
        for name, off in RAGGED.items():
            if name in layout:
                total = int(self.offsets[off][-1])
                if self.shapes[name][0] != total:
                    raise DataError(
                        f"{self.shapes[name][0]} rows, but '{off}' ends at {total}",
                        file=p,
                        field=name,
                    )
        for name in ("widths", "heights", "video_ids", "frame_ids"):
            if name in self.shapes and self.shapes[name][0] != self.n:
                raise DataError(f"expected {self.n} rows", file=p, field=name)
        if self.kind == "predictions" and num_predicates is not None:
            r = self.shapes["predicate_scores"][1]
            if self.shapes["predicate_scores"][0] and r != num_predicates:
                raise DataError(
                    f"expected {num_predicates} columns, got {r}", file=p, field="predicate_scores"
                )
        if self.kind.startswith("vidvrd"):
            names_ = meta.get("names")
            if not isinstance(names_, list) or not all(isinstance(x, str) for x in names_):
                raise DataError("meta 'names' must be a list of strings", file=p, field="names")

    def _verify(self) -> None:
        """Every array the writer gave a CRC-32 has it still (a damaged byte of raw data is
        otherwise another value, read without complaint)."""
        p = self.path
        crcs = self.meta.get("array_crc32")
        if crcs is None:
            return
        if not isinstance(crcs, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in crcs.values()
        ):
            raise DataError(
                "meta 'array_crc32' must map array names to 32-bit checksums",
                file=p,
                field="array_crc32",
            )
        names = set(self.store.names())
        for name, want in crcs.items():
            if name not in names:
                raise DataError("a checksummed array is missing", file=p, field=name)
            if self._crc(name) != want:
                raise DataError(
                    "damaged: the array's data do not match its checksum (crc32)",
                    file=p,
                    field=name,
                )

    def _crc(self, name: str) -> int:
        shape, dtype = self.store.info(name)
        if dtype.kind not in "iuf":
            return text_crc32(self._ids(name))
        n = shape[0] if shape else 1
        row = max(1, int(np.prod(shape[1:])) * dtype.itemsize if len(shape) > 1 else dtype.itemsize)
        step = max(1, CRC_BLOCK // row)
        crc = 0
        for a in range(0, n, step):
            b = min(n, a + step)
            block = np.ascontiguousarray(
                self.store.read(name, a, b) if shape else self.store.read(name)
            )
            crc = update_crc32(block, crc)
            self.store.release(name, a, b)
        return crc

    def _check_array(self, name: str, ndim: int, trail: tuple | None, dkind: str) -> None:
        shape, dtype = self.store.info(name)
        p = self.path
        if len(shape) != ndim or (trail is not None and tuple(shape[1:]) != trail):
            want = "[n" + "".join(f", {t}" for t in (trail or ("R",))) + "]" if ndim > 1 else "[n]"
            raise DataError(f"expected shape {want}, got {list(shape)}", file=p, field=name)
        if dkind == "i" and dtype.kind not in "iu":
            raise DataError(f"expected integers, got {dtype}", file=p, field=name)
        if dkind == "f" and dtype.kind not in "f":
            raise DataError(f"expected floating point, got {dtype}", file=p, field=name)
        if dkind == "id" and dtype.kind not in "iuOSU":
            raise DataError(f"expected integer or text ids, got {dtype}", file=p, field=name)
        self.shapes[name] = tuple(shape)

    def _ids(self, name: str) -> list:
        arr = self.store.read(name)
        if arr.dtype.kind in "iu":
            return [int(v) for v in arr]
        out = []
        for v in arr:
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    raise DataError("id is not UTF-8 text", file=self.path, field=name) from None
            out.append(str(v))
        return out

    def _offsets(self, name: str) -> np.ndarray:
        off = np.asarray(self.store.read(name), dtype=np.int64)
        n_expect = self.n + 1 if name != "traj_offsets" else self.shapes["triplets"][0] + 1
        if off.shape[0] != n_expect:
            raise DataError(
                f"expected {n_expect} offsets, got {off.shape[0]}", file=self.path, field=name
            )
        if off[0] != 0 or (np.diff(off) < 0).any():
            raise DataError(
                "offsets must start at 0 and never decrease", file=self.path, field=name
            )
        return off

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> BinaryReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ image chunks
    def _rows(self, name: str, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
        off = self.offsets[RAGGED[name]]
        a, b = int(off[i0]), int(off[i1])
        return self.store.read(name, a, b), off[i0 : i1 + 1] - a

    def chunks(self, size: int = 64) -> Iterator[list[dict]]:
        """Validated lists of per-image dicts (numpy views), ``size`` images at a time."""
        if self.kind not in ("predictions", "ground_truth"):
            raise DataError(f"{self.kind} files are read per video", file=self.path)
        for i0 in range(0, self.n, size):
            i1 = min(self.n, i0 + size)
            yield (
                self._prediction_chunk(i0, i1)
                if self.kind == "predictions"
                else self._gt_chunk(i0, i1)
            )
            for name, off_name in RAGGED.items():  # the consumer is done with this chunk
                if name in self.shapes and off_name in self.offsets:
                    off = self.offsets[off_name]
                    self.store.release(name, int(off[i0]), int(off[i1]))

    def _err(self, msg: str, i: int, field: str) -> DataError:
        return DataError(msg, file=self.path, sample=self.ids[i], field=field)

    def _first_bad(self, bad: np.ndarray, off: np.ndarray, i0: int) -> int:
        """The image (absolute index) that owns the first true row of ``bad``."""
        r = int(np.flatnonzero(bad)[0])
        return i0 + int(np.searchsorted(off, r, side="right")) - 1

    def _check_boxes(self, boxes: np.ndarray, off: np.ndarray, i0: int) -> None:
        if not boxes.shape[0]:
            return
        fin = np.isfinite(boxes).all(axis=1)
        if not fin.all():
            i = self._first_bad(~fin, off, i0)
            raise self._err("a box is not finite", i, "boxes")
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if bad.any():
            raise self._err("a box has x2<x1 or y2<y1", self._first_bad(bad, off, i0), "boxes")

    def _check_labels(self, labels: np.ndarray, off: np.ndarray, i0: int) -> None:
        if not labels.shape[0]:
            return
        bad = labels < 0
        if self.num_classes is not None:
            bad |= labels >= self.num_classes
        if bad.any():
            i = self._first_bad(bad, off, i0)
            v = int(labels[np.flatnonzero(bad)[0]])
            rng = f"[0, {self.num_classes})" if self.num_classes is not None else ">= 0"
            raise self._err(f"label {v} is out of range {rng}", i, "labels")

    def _check_index(
        self, idx: np.ndarray, off: np.ndarray, counts: np.ndarray, i0: int, field: str
    ) -> None:
        if not idx.shape[0]:
            return
        # fast check: the global minimum and each image's largest index (one pass each);
        # the row-by-row test below runs only to name the first bad image
        rows = np.diff(off)
        nonempty = rows > 0
        if idx.shape[1] == 2:  # pairs: two strided columns beat a width-2 axis reduction
            hi, lo = np.maximum(idx[:, 0], idx[:, 1]), np.minimum(idx[:, 0], idx[:, 1])
        else:
            hi, lo = idx.max(axis=1), idx.min(axis=1)
        per_image_max = np.maximum.reduceat(hi, off[:-1][nonempty])
        if int(lo.min()) >= 0 and (per_image_max < counts[nonempty]).all():
            return
        per_row = np.repeat(counts, rows)
        bad = ((idx < 0) | (idx >= per_row[:, None])).any(axis=1)
        if bad.any():
            raise self._err(
                "index points outside the image's boxes",
                self._first_bad(bad, off, i0),  # type: ignore[arg-type]
                field,
            )

    def _prediction_chunk(self, i0: int, i1: int) -> list[dict]:
        boxes, boff = self._rows("boxes", i0, i1)
        labels, _ = self._rows("labels", i0, i1)
        lscores, _ = self._rows("label_scores", i0, i1)
        pairs, poff = self._rows("pairs", i0, i1)
        scores, _ = self._rows("predicate_scores", i0, i1)
        self._check_boxes(boxes, boff, i0)
        self._check_labels(labels, boff, i0)
        if lscores.shape[0] and not np.isfinite(lscores).all():
            i = self._first_bad(~np.isfinite(lscores), boff, i0)
            raise self._err("label scores contain NaN or inf", i, "label_scores")
        self._check_index(pairs, poff, np.diff(boff), i0, "pairs")
        if self.check_scores and scores.size and not _finite_sum(scores):
            fin = np.isfinite(scores).all(axis=1)
            if not fin.all():
                i = self._first_bad(~fin, poff, i0)
                raise self._err("predicate scores contain NaN or inf", i, "predicate_scores")
        out = []
        for k in range(i1 - i0):
            b0, b1, p0, p1 = boff[k], boff[k + 1], poff[k], poff[k + 1]
            out.append(
                {
                    "image_id": self.ids[i0 + k],
                    "boxes": boxes[b0:b1],
                    "labels": labels[b0:b1],
                    "label_scores": lscores[b0:b1],
                    "pairs": pairs[p0:p1],
                    "predicate_scores": scores[p0:p1],
                }
            )
        return out

    def _gt_chunk(self, i0: int, i1: int) -> list[dict]:
        boxes, boff = self._rows("boxes", i0, i1)
        labels, _ = self._rows("labels", i0, i1)
        rels, roff = self._rows("relations", i0, i1)
        widths = self.store.read("widths", i0, i1)
        heights = self.store.read("heights", i0, i1)
        if ((widths <= 0) | (heights <= 0)).any():
            i = i0 + int(np.flatnonzero((widths <= 0) | (heights <= 0))[0])
            raise self._err("image size must be positive", i, "width/height")
        self._check_boxes(boxes, boff, i0)
        if boxes.shape[0]:
            counts = np.diff(boff)
            far = boxes_far_outside(boxes, np.repeat(widths, counts), np.repeat(heights, counts))
            if far.any():
                raise self._err(
                    "a box lies far outside its image", self._first_bad(far, boff, i0), "boxes"
                )
        self._check_labels(labels, boff, i0)
        self._check_index(rels[:, :2], roff, np.diff(boff), i0, "relations")
        if rels.shape[0]:
            bad = rels[:, 2] < 0
            if self.num_predicates is not None:
                bad |= rels[:, 2] >= self.num_predicates
            if bad.any():
                raise self._err(
                    "predicate out of range", self._first_bad(bad, roff, i0), "relations"
                )
        extras = {key: vals[i0:i1] for key, vals in self.extra_ids.items()}
        out = []
        for k in range(i1 - i0):
            b0, b1, r0, r1 = boff[k], boff[k + 1], roff[k], roff[k + 1]
            d = {
                "image_id": self.ids[i0 + k],
                "width": int(widths[k]),
                "height": int(heights[k]),
                "boxes": boxes[b0:b1],
                "labels": labels[b0:b1],
                "relations": rels[r0:r1],
            }
            for key, vals in extras.items():
                d[key] = vals[k]
            out.append(d)
        return out

    # ------------------------------------------------------------------ VidVRD
    def videos(self) -> Iterator[tuple[Any, list[dict]]]:
        """``(video_id, relation instances)`` per video, as the VidVRD JSON has them."""
        if not self.kind.startswith("vidvrd"):  # type: ignore[union-attr]
            raise DataError(f"{self.kind} files are read per image", file=self.path)
        names = self.meta["names"]
        ioff, toff = self.offsets["instance_offsets"], self.offsets["traj_offsets"]
        has_scores = self.kind == "vidvrd_results"
        for v in range(self.n):
            a, b = int(ioff[v]), int(ioff[v + 1])
            trip = self.store.read("triplets", a, b)
            dur = self.store.read("durations", a, b)
            sc = self.store.read("scores", a, b) if has_scores else None
            f0, f1 = int(toff[a]), int(toff[b])
            sub = self.store.read("sub_traj", f0, f1)
            obj = self.store.read("obj_traj", f0, f1)
            if trip.size and ((trip < 0) | (trip >= len(names))).any():
                raise self._err("triplet index outside 'names'", v, "triplets")
            length = np.diff(toff[a : b + 1])
            if dur.size and ((dur[:, 1] - dur[:, 0]) != length).any():
                raise self._err("duration does not match the trajectory length", v, "durations")
            if sub.size and not (np.isfinite(sub).all() and np.isfinite(obj).all()):
                raise self._err("a trajectory box is not finite", v, "sub_traj")
            if sc is not None and sc.size and not np.isfinite(sc).all():
                raise self._err("score is NaN or inf", v, "scores")
            rels = []
            for j in range(b - a):
                t0, t1 = int(toff[a + j]) - f0, int(toff[a + j + 1]) - f0
                r = {
                    "triplet": [names[int(x)] for x in trip[j]],
                    "duration": [int(dur[j, 0]), int(dur[j, 1])],
                    "sub_traj": sub[t0:t1],
                    "obj_traj": obj[t0:t1],
                }
                if sc is not None:
                    r["score"] = float(sc[j])
                rels.append(r)
            yield self.ids[v], rels


# ---------------------------------------------------------------------------- writing
def _ids_array(ids: Sequence[Any], field: str) -> np.ndarray:
    if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
        return np.asarray(list(ids), dtype=np.int64)
    if all(isinstance(i, str) for i in ids):
        return np.asarray(list(ids), dtype=str) if ids else np.zeros(0, dtype="<U1")
    raise DataError("ids must be all integers or all strings", field=field)


def _offsets(counts: Iterable[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.asarray(list(counts), dtype=np.int64))]).astype(
        np.int64
    )


def _cat(parts: list, dtype, width: int | None) -> np.ndarray:
    shape = (0,) if width is None else (0, width)
    if not parts:
        return np.zeros(shape, dtype=dtype)
    arrs = [
        np.asarray(x, dtype=dtype).reshape((-1,) if width is None else (-1, width)) for x in parts
    ]
    return np.concatenate(arrs)


def _field(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj[key]
    v = getattr(obj, key)
    return v.numpy() if hasattr(v, "numpy") else v


def predictions_arrays(preds: Sequence[Any]) -> dict[str, np.ndarray]:
    """The arrays of a ``predictions`` file from :class:`Predictions` or prediction dicts."""
    ncol = None
    scores = []
    for p in preds:
        s = np.asarray(_field(p, "predicate_scores"), dtype=np.float32)
        if s.size:
            s = s.reshape(s.shape[0], -1)
            if ncol is not None and s.shape[1] != ncol:
                raise DataError(
                    f"{s.shape[1]} predicate columns, other images have {ncol}",
                    sample=_field(p, "image_id"),
                    field="predicate_scores",
                )
            ncol = s.shape[1]
        scores.append(s)
    ncol = ncol or 0
    boxes = [_field(p, "boxes") for p in preds]
    pairs = [np.asarray(_field(p, "pairs"), dtype=np.int64).reshape(-1, 2) for p in preds]
    return {
        "image_ids": _ids_array([_field(p, "image_id") for p in preds], "image_id"),
        "box_offsets": _offsets(np.asarray(b).reshape(-1, 4).shape[0] for b in boxes),
        "boxes": _cat(boxes, np.float32, 4),
        "labels": _cat([_field(p, "labels") for p in preds], np.int64, None),
        "label_scores": _cat([_field(p, "label_scores") for p in preds], np.float32, None),
        "pair_offsets": _offsets(x.shape[0] for x in pairs),
        "pairs": _cat(pairs, np.int64, 2),
        "predicate_scores": np.concatenate([s.reshape(-1, ncol) for s in scores])
        if scores
        else np.zeros((0, ncol), np.float32),
    }


def ground_truth_arrays(graphs: Sequence[Any]) -> dict[str, np.ndarray]:
    """The arrays of a ``ground_truth`` file from :class:`SceneGraph` or GT dicts."""

    def extra(g: Any, key: str) -> Any:
        if isinstance(g, dict):
            return g.get(key)
        return g.extras.get(key)

    boxes = [np.asarray(_field(g, "boxes"), np.float32).reshape(-1, 4) for g in graphs]
    rels = [np.asarray(_field(g, "relations"), np.int64).reshape(-1, 3) for g in graphs]
    out = {
        "image_ids": _ids_array([_field(g, "image_id") for g in graphs], "image_id"),
        "widths": np.asarray([int(_field(g, "width")) for g in graphs], dtype=np.int64),
        "heights": np.asarray([int(_field(g, "height")) for g in graphs], dtype=np.int64),
        "box_offsets": _offsets(b.shape[0] for b in boxes),
        "boxes": _cat(boxes, np.float32, 4),
        "labels": _cat([_field(g, "labels") for g in graphs], np.int64, None),
        "rel_offsets": _offsets(r.shape[0] for r in rels),
        "relations": _cat(rels, np.int64, 3),
    }
    for key in ("video_id", "frame_id"):
        vals = [extra(g, key) for g in graphs]
        if graphs and all(v is not None for v in vals):
            out[key + "s"] = _ids_array(vals, key)
    return out


def vidvrd_arrays(
    videos: dict[Any, list], results: bool
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays (and triplet vocabulary) of a VidVRD file from video id -> instances."""
    names: dict[str, int] = {}
    trip, dur, sc, sub, obj, counts, lengths = [], [], [], [], [], [], []
    for vid, rels in videos.items():
        counts.append(len(rels))
        for i, r in enumerate(rels):
            try:
                t = [names.setdefault(str(x), len(names)) for x in r["triplet"]]
                if len(t) != 3:
                    raise ValueError("triplet must have 3 names")
                s = np.asarray(r["sub_traj"], dtype=np.float64).reshape(-1, 4)
                o = np.asarray(r["obj_traj"], dtype=np.float64).reshape(-1, 4)
                d = [int(r["duration"][0]), int(r["duration"][1])]
                if s.shape != o.shape or d[1] - d[0] != s.shape[0]:
                    raise ValueError("duration and trajectory lengths differ")
                if results:
                    sc.append(float(r["score"]))
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise DataError(
                    f"bad relation instance ({exc})", sample=f"{vid} relation {i}"
                ) from None
            trip.append(t)
            dur.append(d)
            sub.append(s)
            obj.append(o)
            lengths.append(s.shape[0])
    arrays = {
        "video_ids": _ids_array(list(videos), "video_id"),
        "instance_offsets": _offsets(counts),
        "triplets": np.asarray(trip, dtype=np.int64).reshape(-1, 3),
        "durations": np.asarray(dur, dtype=np.int64).reshape(-1, 2),
        "traj_offsets": _offsets(lengths),
        "sub_traj": _cat(sub, np.float64, 4),
        "obj_traj": _cat(obj, np.float64, 4),
    }
    if results:
        arrays["scores"] = np.asarray(sc, dtype=np.float64)
    return arrays, list(names)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_binary(
    path: str | os.PathLike,
    kind: str,
    arrays: dict[str, np.ndarray],
    meta: dict | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a binary interchange file (format by extension), atomically.

    Arrays are stored contiguous and uncompressed, so readers memory-map them.
    """
    path = Path(path)
    if kind not in LAYOUTS:
        raise DataError(f"unknown kind {kind!r}", field="kind")
    if not is_binary(path):
        raise DataError(f"expected a {'/'.join(BINARY_SUFFIXES)} name", file=str(path))
    if path.exists() and not overwrite:
        raise DataError("exists (pass --overwrite to replace it)", file=str(path))
    if path.is_dir():
        raise DataError("is a directory", file=str(path))
    full = {"format": BIN_FORMAT, "kind": kind, **(meta or {})}
    crcs = {name: array_crc32(np.asarray(arr)) for name, arr in arrays.items()}
    full["array_crc32"] = {name: c for name, c in crcs.items() if c is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() != ".npz":

        def fill(f: Any) -> None:
            import h5py

            # fixed-length bytes live in the object header, which the 1.8 layout checksums; a
            # Python str would be a variable-length string in the unchecksummed global heap
            # (a meta over 64 KB goes to dense attribute storage, which is not: its digest is)
            text = json.dumps(full).encode()
            f.attrs["meta"] = np.bytes_(text)
            f.attrs["meta_sha256"] = np.bytes_(_digest(text).encode())
            for name, arr in arrays.items():
                arr = np.ascontiguousarray(arr)
                if arr.dtype.kind == "U":
                    f.create_dataset(name, data=arr.astype(object), dtype=h5py.string_dtype())
                else:
                    f.create_dataset(name, data=arr)

        return write_h5_atomic(path, fill)  # built in memory: a full disk is an OSError
    remove_stale_temporaries(path)
    tmp = temporary_name(path)
    try:
        with naming_errors(path), zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, True) as z:
            for name, arr in [("__meta__", np.asarray(json.dumps(full)))] + list(arrays.items()):
                with z.open(name + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(
                        f, np.require(arr, requirements="C"), allow_pickle=False
                    )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_ground_truth_binary(path: str | os.PathLike) -> tuple[list[dict], dict]:
    """All images of a binary ground-truth file as dicts of numpy arrays, and its meta."""
    with BinaryReader(path, kind="ground_truth") as r:
        meta = r.meta
        for key in ("object_classes", "predicates"):
            if not isinstance(meta.get(key), list):
                raise DataError(f"meta needs a list '{key}'", file=str(path), field=key)
        r.num_classes, r.num_predicates = len(meta["object_classes"]), len(meta["predicates"])
        graphs = [g for chunk in r.chunks(4096) for g in chunk]
        # copies: the reader's memory maps close with it
        for g in graphs:
            for k in ("boxes", "labels", "relations"):
                g[k] = np.array(g[k])
    return graphs, meta


def read_vidvrd_binary(path: str | os.PathLike, kind: str) -> tuple[dict[Any, list], dict]:
    """All videos of a binary VidVRD file (``kind``: ``vidvrd_results`` /
    ``vidvrd_ground_truth``) as video id -> relation instances, and its meta."""
    with BinaryReader(path, kind=kind) as r:
        out = {
            vid: [
                dict(x, sub_traj=np.array(x["sub_traj"]), obj_traj=np.array(x["obj_traj"]))
                for x in rels
            ]
            for vid, rels in r.videos()
        }
        return out, r.meta
