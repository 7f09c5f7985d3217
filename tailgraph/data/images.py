"""Image datasets and batching for image scene graphs (VG150 format and synth-vg)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tailgraph.errors import DataError
from tailgraph.structures import IMAGENET_MEAN, IMAGENET_STD, GraphBatch, SceneGraph

__all__ = [
    "GraphImageDataset",
    "collate_graph_batch",
    "image_size",
    "load_image",
    "pad_images",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]


def image_size(path, sample: object = None) -> tuple[int, int]:
    """``(width, height)`` of an image file, which must decode (a :class:`DataError` naming the
    file and sample otherwise)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"cannot decode image ({exc})", file=str(path), sample=sample, field="image"
        ) from None


def load_image(path: str, max_size: int, *, sample: object = None) -> tuple[torch.Tensor, float]:
    """Read an image, resize it so its longer side is ``max_size``, normalise it.

    Returns:
        ``(tensor [3, h, w] float32, scale)`` where ``scale`` maps original pixels to the
        tensor's pixels.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")  # type: ignore[assignment]
            w, h = im.size
            scale = max_size / max(w, h)
            if scale != 1.0:
                im = im.resize(
                    (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR
                )  # type: ignore[assignment]
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError("image file not found", file=path, sample=sample, field="image") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(
            f"cannot decode image ({exc})", file=path, sample=sample, field="image"
        ) from None
    t = torch.from_numpy(arr).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (t - mean) / std, scale


class GraphImageDataset(Dataset):
    """Scene graphs with (optionally) their images.

    Args:
        graphs: the scene graphs.
        max_size: longer image side after resizing (pixels).
        layout_only: do not read images (boxes, labels, relations only).
        cache_images: keep decoded images in memory after the first read (small sets).

    Items are ``(image [3, h, w] or None, scale, graph)``.
    """

    def __init__(
        self,
        graphs: Sequence[SceneGraph],
        max_size: int = 192,
        layout_only: bool = False,
        cache_images: bool = False,
    ) -> None:
        self.graphs = list(graphs)
        self.max_size = max_size
        self.layout_only = layout_only
        self.cache_images = cache_images
        self._cache: dict[int, tuple[torch.Tensor, float]] = {}
        if not layout_only:
            for g in self.graphs:
                if g.image_path is None:
                    raise DataError(
                        "no image file (read the data set with layout_only=False)",
                        sample=g.image_id,
                        field="image_path",
                    )

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int):
        g = self.graphs[i]
        if self.layout_only:
            return None, 1.0, g
        if i in self._cache:
            img, scale = self._cache[i]
        else:
            img, scale = load_image(g.image_path, self.max_size, sample=g.image_id)  # type: ignore[arg-type]
            if self.cache_images:
                self._cache[i] = (img, scale)
        return img, scale, g


def pad_images(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[B, 3, H, W]``: the ``[3, h, w]`` images zero-padded to the largest height / width."""
    h = max(t.shape[1] for t in images)
    w = max(t.shape[2] for t in images)
    out = torch.zeros((len(images), 3, h, w), dtype=torch.float32)
    for k, t in enumerate(images):
        out[k, :, : t.shape[1], : t.shape[2]] = t
    return out


def collate_graph_batch(items: list) -> GraphBatch:
    """Zero-pad images to the batch's largest size; keep graphs as a list."""
    graphs = [g for _, _, g in items]
    if items[0][0] is None:
        return GraphBatch(graphs=graphs)
    images = pad_images([img for img, _, _ in items])
    scales = torch.tensor([s for _, s, _ in items], dtype=torch.float32)
    return GraphBatch(graphs=graphs, images=images, scales=scales)
