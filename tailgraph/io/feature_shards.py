"""A content-addressed feature cache on disk: HDF5 shards, each written whole.

Entries are arrays keyed by a string (e.g. the SHA-1 of an input image's bytes) under a folder
that belongs to one extractor: ``<root>/<checksum>/shard_NNNNN.h5``. New entries are held in
memory and written as a new shard when ``flush_every`` of them are pending and when the cache
is closed (also at interpreter exit); a shard is written to a temporary name and renamed, so an
interrupted run loses at most its pending entries and never leaves a half-written shard. On
open, every complete shard of the folder is read into memory, each entry checked against the
CRC-32 written beside it (attribute ``crc32``; shards written before it have none).
"""

from __future__ import annotations

import atexit
import os
import weakref
from pathlib import Path

import numpy as np

from tailgraph.errors import DataError
from tailgraph.io.checksums import array_crc32
from tailgraph.io.outputs import write_h5_atomic

__all__ = ["FeatureShards"]


class FeatureShards:
    """A ``dict``-like cache of arrays, persisted as HDF5 shards under ``folder``.

    Args:
        folder: the extractor's cache folder (created on the first flush).
        flush_every: pending entries that trigger writing a shard.
    """

    def __init__(self, folder: str | os.PathLike, flush_every: int = 512) -> None:
        self.folder = Path(folder)
        self.flush_every = int(flush_every)
        self._data: dict[str, np.ndarray] = {}
        self._pending: list[str] = []
        self._read()
        self._finalizer = weakref.finalize(self, FeatureShards._flush_at_exit, weakref.ref(self))
        atexit.register(self._finalizer)

    @staticmethod
    def _flush_at_exit(ref: weakref.ref) -> None:
        obj = ref()
        if obj is None:
            return
        try:
            obj.flush()
        except OSError as exc:  # at exit the command's outputs are complete: a cache miss later
            import sys

            print(f"feature cache not written: {exc}", file=sys.stderr)

    def _read(self) -> None:
        import h5py

        if not self.folder.is_dir():
            return
        for shard in sorted(self.folder.glob("shard_*.h5")):
            try:
                with h5py.File(shard, "r") as fh:
                    for key in fh:
                        value = fh[key][()]
                        crc = fh[key].attrs.get("crc32")
                        if crc is not None and array_crc32(np.asarray(value)) != int(crc):
                            raise DataError(
                                "damaged feature cache shard: an entry does not match its "
                                "checksum (delete the shard to rebuild it)",
                                file=str(shard),
                                sample=key,
                            )
                        self._data[key] = value
            except DataError:
                raise
            except (OSError, KeyError, ValueError) as exc:
                raise DataError(
                    f"unreadable feature cache shard (delete it to rebuild): {exc}",
                    file=str(shard),
                ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> np.ndarray | None:
        return self._data.get(key)

    def put(self, key: str, value: np.ndarray) -> None:
        if key in self._data:
            return
        self._data[key] = np.ascontiguousarray(value)
        self._pending.append(key)
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the pending entries as one new shard."""
        if not self._pending:
            return
        import h5py

        self.folder.mkdir(parents=True, exist_ok=True)
        n = len(list(self.folder.glob("shard_*.h5")))
        while (self.folder / f"shard_{n:05d}.h5").exists():
            n += 1
        path = self.folder / f"shard_{n:05d}.h5"
        pending = list(self._pending)

        def fill(fh: h5py.File) -> None:
            for key in pending:
                ds = fh.create_dataset(key, data=self._data[key])
                crc = array_crc32(self._data[key])
                if crc is not None:
                    ds.attrs["crc32"] = np.uint32(crc)

        # assembled in memory, written in one piece: HDF5's own write-error path (a full disk
        # mid-file) can crash the process
        write_h5_atomic(path, fill)
        self._pending = []
