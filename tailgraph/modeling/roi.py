"""Visual features of objects and pairs: backbone feature map → RoIAlign → MLP."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

from tailgraph.modeling.backbone import ResNetTrunk
from tailgraph.modeling.geometry import union_boxes
from tailgraph.modeling.types import FeatureStage

__all__ = ["PixelFeatures", "CachedTrunkFeatures", "rois_with_batch_index"]


def rois_with_batch_index(
    boxes: torch.Tensor, box_to_img: torch.Tensor, scales: torch.Tensor
) -> torch.Tensor:
    """``[K, 5]`` RoIs (batch_idx, x1, y1, x2, y2) in input-tensor pixels.

    Args:
        boxes: ``[K, 4]`` xyxy in original image pixels.
        box_to_img: ``[K]`` image index of each box.
        scales: ``[B]`` resize factor from original image pixels to the input tensor.
    """
    scaled = boxes * scales[box_to_img].unsqueeze(1).to(boxes.dtype)
    return torch.cat([box_to_img.to(boxes.dtype).unsqueeze(1), scaled], dim=1)


class PixelFeatures(FeatureStage):
    """Object and union-box features from pixels.

    A ResNet trunk (cut after ``last_stage``) computes a feature map once per image; RoIAlign
    pools ``roi_size × roi_size`` cells for every object box and every candidate pair's union
    box; a small conv + MLP turns each into a vector.

    Args:
        depth: ResNet depth (18 / 34 / 50).
        weights_path: torchvision ResNet weights on disk; ``None`` = random initialisation.
        last_stage: last trunk stage used (``layer2`` keeps CPU training cheap; ``layer3`` /
            ``layer4`` for real data).
        roi_size: RoIAlign output size.
        out_dim: size of the object / union feature vectors.
        frozen_trunk: freeze the trunk (use with a feature cache).
        union_features: also compute union-box features.
        reduce_channels: channels of the 1×1 reduction applied to each pooled RoI.
        union_maps: return each union box's pooled ``roi_size × roi_size`` map of the trunk's
            channels instead of a vector (STTran / TEMPURA: the relation model sums it with its
            box-mask map before flattening); ``union_dim`` is then the trunk's channel count.

    Shapes:
        ``forward(images [B,3,H,W], scales [B], boxes [N,4], obj_to_img [N], pairs [P,2])``
        → ``(obj_feats [N, out_dim], union_feats [P, out_dim] or [P, C, roi_size, roi_size]
        or None)``.
    """

    def __init__(
        self,
        depth: int = 18,
        weights_path: str | None = None,
        last_stage: str = "layer3",
        roi_size: int = 7,
        out_dim: int = 256,
        frozen_trunk: bool = False,
        union_features: bool = True,
        reduce_channels: int = 32,
        union_maps: bool = False,
    ) -> None:
        super().__init__()
        self.trunk = ResNetTrunk(
            depth, weights_path=weights_path, last_stage=last_stage, frozen=frozen_trunk
        )
        c = self.trunk.out_channels
        self.roi_size = roi_size
        self.spatial_scale = 1.0 / self.trunk.stride
        self.out_dim = self.obj_dim = out_dim
        self.union_features = union_features

        def head() -> nn.Module:
            # 1x1 reduction before flattening keeps the per-RoI cost small (many union boxes).
            return nn.Sequential(
                nn.Conv2d(c, reduce_channels, kernel_size=1),
                nn.BatchNorm2d(reduce_channels),
                nn.ReLU(inplace=True),
                nn.Flatten(),
                nn.Linear(reduce_channels * roi_size * roi_size, out_dim),
                nn.ReLU(inplace=True),
            )

        self.obj_head = head()
        self.union_maps = bool(union_maps) and union_features
        self.union_dim = (c if self.union_maps else out_dim) if union_features else 0
        self.union_head = (nn.Identity() if self.union_maps else head()) if union_features else None

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The trunk's feature map of the batch (computed once per batch)."""
        return self.trunk(images)

    def object_features(
        self,
        fmap: torch.Tensor,
        scales: torch.Tensor,
        boxes: torch.Tensor,
        obj_to_img: torch.Tensor,
    ) -> torch.Tensor:
        rois = rois_with_batch_index(boxes, obj_to_img, scales)
        return self.obj_head(
            roi_align(fmap, rois, self.roi_size, self.spatial_scale, sampling_ratio=2, aligned=True)
        )

    def union_features_of(
        self,
        fmap: torch.Tensor,
        scales: torch.Tensor,
        boxes: torch.Tensor,
        obj_to_img: torch.Tensor,
        pairs: torch.Tensor,
    ) -> torch.Tensor | None:
        """Union-box features of ``pairs`` (``None`` when this extractor has no union head)."""
        if self.union_head is None:
            return None
        if pairs.shape[0] == 0:
            if self.union_maps:
                return fmap.new_zeros((0, self.union_dim, self.roi_size, self.roi_size))
            return fmap.new_zeros((0, self.out_dim))
        rois = rois_with_batch_index(union_boxes(boxes, pairs), obj_to_img[pairs[:, 0]], scales)
        return self.union_head(
            roi_align(fmap, rois, self.roi_size, self.spatial_scale, sampling_ratio=2, aligned=True)
        )

    def forward(
        self,
        images: torch.Tensor,
        scales: torch.Tensor,
        boxes: torch.Tensor,
        obj_to_img: torch.Tensor,
        pairs: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        fmap = self.feature_map(images)
        obj_feats = self.object_features(fmap, scales, boxes, obj_to_img)
        return obj_feats, self.union_features_of(fmap, scales, boxes, obj_to_img, pairs)


class CachedTrunkFeatures(PixelFeatures):
    """:class:`PixelFeatures` with a frozen trunk whose feature maps are computed once.

    The trunk's map of a frame depends only on the frame's pixels and the trunk's weights, so
    it is cached, keyed by the SHA-1 of the input tensor's bytes (shape and dtype included) in
    a folder named by a checksum of the trunk's parameters, buffers and settings: a cache of
    other weights is never read. The RoI pooling and the object / union heads above the trunk
    still run (and train) on every step, so outputs equal :class:`PixelFeatures` with
    ``frozen_trunk=True`` and the same weights. ``cache_dir=None`` keeps the maps in memory
    for the run; a folder keeps them on disk as HDF5 shards
    (:class:`tailgraph.io.feature_shards.FeatureShards`) for later runs and seeds that share
    the trunk.

    Args:
        cache_dir: where the shards live (``None`` = memory only).
        flush_every: new maps held in memory before a shard is written.
        **kwargs: :class:`PixelFeatures` options (``frozen_trunk`` is always true).
    """

    def __init__(self, cache_dir: str | None = None, flush_every: int = 512, **kwargs) -> None:
        kwargs["frozen_trunk"] = True
        super().__init__(**kwargs)
        self.cache_dir = cache_dir
        self.flush_every = flush_every
        self._store: dict | None = None
        self._shards = None
        self.misses = self.hits = 0
        # new weights (a checkpoint, init_from) = another cache
        self.register_load_state_dict_post_hook(lambda module, keys: module._reset_cache())

    def _reset_cache(self) -> None:
        if self._shards is not None:
            self._shards.flush()
        self._store, self._shards = None, None

    def trunk_checksum(self) -> str:
        """SHA-256 over the trunk's parameters and buffers and its settings."""
        import hashlib

        h = hashlib.sha256()
        for name, t in list(self.trunk.named_parameters()) + list(self.trunk.named_buffers()):
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(f"{self.trunk.depth}/{self.trunk.last_stage}".encode())
        return h.hexdigest()

    def _cache(self):
        if self._store is None and self._shards is None:
            if self.cache_dir is None:
                self._store = {}
            else:
                from pathlib import Path

                from tailgraph.io.feature_shards import FeatureShards

                folder = Path(self.cache_dir) / self.trunk_checksum()[:16]
                self._shards = FeatureShards(folder, self.flush_every)
        return self._store if self._store is not None else self._shards

    @torch.compiler.disable  # hashing and the cache's files: eager under model.compile
    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        import hashlib

        cache = self._cache()
        x = images.detach().contiguous()
        keys = [
            hashlib.sha1(
                f"{tuple(im.shape)}{im.dtype}".encode() + im.cpu().numpy().tobytes()
            ).hexdigest()
            for im in x
        ]
        maps: list = [cache.get(k) for k in keys]
        missing = [i for i, m in enumerate(maps) if m is None]
        if missing:
            with torch.no_grad():
                fresh = self.trunk(x[missing]).float().cpu().numpy()
            for i, m in zip(missing, fresh):
                maps[i] = m
                if isinstance(cache, dict):
                    cache[keys[i]] = m
                else:
                    cache.put(keys[i], m)
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return torch.stack([torch.from_numpy(m) for m in maps]).to(images.device)
