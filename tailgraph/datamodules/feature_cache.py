"""HDF5 cache of frozen-backbone RoI features.

With a frozen trunk, object features depend only on the image, its boxes and the extractor's
weights and settings, so they are computed once and read back on later epochs and runs. The
cache stores a checksum of the extractor's parameters and buffers plus its settings; a cache
built with other weights, other settings or other boxes is stale and :func:`ensure_cache`
rebuilds it. The file is assembled in memory and written to a temporary name and renamed, so
an interrupted build or a full disk never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tailgraph.errors import DataError
from tailgraph.io.checksums import array_crc32

__all__ = ["extractor_checksum", "build_cache", "CachedFeatures", "ensure_cache"]

CACHE_VERSION = 1


def extractor_checksum(module: nn.Module, settings: Mapping[str, Any] | None = None) -> str:
    """SHA-256 over every parameter and buffer (names, shapes, bytes) and the settings JSON."""
    h = hashlib.sha256()
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(dict(settings or {}), sort_keys=True, default=str).encode())
    return h.hexdigest()


@torch.no_grad()
def build_cache(
    path: str | Path,
    extractor: nn.Module,
    batches: Iterable[Any],
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Compute object features for every image and write them to ``path``.

    Args:
        extractor: ``forward(images, scales, boxes, obj_to_img, pairs) -> (obj_feats, _)``
            (e.g. a frozen :class:`tailgraph.modeling.roi.PixelFeatures`).
        batches: :class:`tailgraph.modeling.relation_model.GraphBatch` es with images.
        settings: anything else the features depend on (input size, ...).
    """
    path = Path(path)
    from tailgraph.io.outputs import write_h5_atomic
    from tailgraph.progress import track

    was_training = extractor.training
    extractor.eval()

    def fill(f: Any) -> None:
        f.attrs["checksum"] = extractor_checksum(extractor, settings)
        f.attrs["version"] = CACHE_VERSION
        f.attrs["settings"] = json.dumps(dict(settings or {}), sort_keys=True, default=str)
        for batch in track(batches, "feature cache", unit="batch"):
            graphs = batch.graphs
            boxes = torch.cat([g.boxes for g in graphs])
            owner = torch.repeat_interleave(
                torch.arange(len(graphs)), torch.tensor([g.num_boxes for g in graphs])
            )
            feats, _ = extractor(
                batch.images, batch.scales, boxes, owner, torch.zeros((0, 2), dtype=torch.int64)
            )
            offset = 0
            for g in graphs:
                grp = f.create_group(str(g.image_id))
                values = feats[offset : offset + g.num_boxes].cpu().numpy()
                ds = grp.create_dataset("features", data=values, track_times=False)
                ds.attrs["crc32"] = np.uint32(array_crc32(values) or 0)
                grp.create_dataset("boxes", data=g.boxes.numpy(), track_times=False)
                offset += g.num_boxes

    try:
        # assembled in memory and written in one piece: HDF5's own write-error path (a full
        # disk mid-file) can crash the process
        write_h5_atomic(path, fill)
    finally:
        extractor.train(was_training)
    return path


class CachedFeatures:
    """Read access to a feature cache.

    Raises :class:`DataError` when the file is missing, unreadable, or stale for the given
    ``checksum``; ``features(graph)`` raises when the graph's boxes differ from the cached ones.
    """

    def __init__(self, path: str | Path, checksum: str | None = None) -> None:
        import h5py

        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except (OSError, FileNotFoundError) as exc:
            raise DataError(
                f"cannot open feature cache (missing, corrupt or truncated): {exc}",
                file=str(self.path),
            ) from None
        if int(self.file.attrs.get("version", -1)) != CACHE_VERSION:
            raise DataError(
                "feature cache of another version", file=str(self.path), field="version"
            )
        if checksum is not None and self.file.attrs.get("checksum") != checksum:
            raise DataError(
                "feature cache is stale: built with other weights or settings",
                file=str(self.path),
                field="checksum",
            )

    def __contains__(self, image_id: object) -> bool:
        return str(image_id) in self.file

    @torch.compiler.disable  # file I/O: runs eagerly under model.compile
    def features(self, graph: Any) -> torch.Tensor:
        key = str(graph.image_id)
        if key not in self.file:
            raise DataError(
                "image not in the feature cache", file=str(self.path), sample=graph.image_id
            )
        grp = self.file[key]
        if not np.array_equal(grp["boxes"][:], graph.boxes.numpy()):
            raise DataError(
                "cached boxes differ from the image's boxes (stale cache)",
                file=str(self.path),
                sample=graph.image_id,
                field="boxes",
            )
        values = grp["features"][:]
        crc = grp["features"].attrs.get("crc32")
        if crc is not None and array_crc32(values) != int(crc):
            raise DataError(
                "damaged feature cache: the image's features do not match their checksum "
                "(delete the file to rebuild it)",
                file=str(self.path),
                sample=graph.image_id,
                field="features",
            )
        return torch.from_numpy(values)

    def close(self) -> None:
        self.file.close()


def ensure_cache(
    path: str | Path,
    extractor: nn.Module,
    batches: Iterable[Any],
    settings: Mapping[str, Any] | None = None,
) -> CachedFeatures:
    """Open the cache at ``path``, (re)building it when it is missing or stale."""
    checksum = extractor_checksum(extractor, settings)
    try:
        return CachedFeatures(path, checksum)
    except DataError:
        build_cache(path, extractor, batches, settings)
        return CachedFeatures(path, checksum)
