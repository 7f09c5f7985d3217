"""CRC-32 of arrays, as tailgraph's HDF5 and ``.npz`` writers record them next to the data.

Neither container checksums raw (contiguous) array data, so a damaged byte would read back as
another value; every tailgraph writer stores :func:`array_crc32` of what it wrote and every
reader compares it (binary interchange files, feature caches, feature shards).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence

import numpy as np

__all__ = ["CRC_BLOCK", "array_crc32", "text_crc32", "update_crc32"]

# bytes per CRC step: large enough for zlib's speed, small enough to keep touched pages bounded
CRC_BLOCK = 1 << 24


def update_crc32(arr: np.ndarray, crc: int = 0) -> int:
    """``crc`` continued over the bytes of the number array ``arr`` (C order)."""
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data
    for i in range(0, len(flat), CRC_BLOCK):
        crc = zlib.crc32(flat[i : i + CRC_BLOCK], crc)
    return crc


def text_crc32(values: Sequence[str]) -> int:
    """CRC-32 of a text array: over its JSON list (UTF-8)."""
    return zlib.crc32(json.dumps([str(v) for v in values], ensure_ascii=False).encode())


def array_crc32(arr: np.ndarray) -> int | None:
    """The CRC-32 a reader recomputes: the raw bytes of a number array, the JSON list of a text
    array; ``None`` for any other dtype."""
    if arr.dtype.kind in "iuf":
        return update_crc32(arr)
    if arr.dtype.kind == "U":
        return text_crc32(arr.tolist())
    return None
