"""Tracklet visual features for VidVRD-II: per-frame RoI features, averaged over a tracklet.

VidVRD-II reads pre-extracted RoI features of each tracklet's boxes and averages them over the
segment. :class:`TrackletFeatureExtractor` computes the per-frame part with a frozen ResNet
trunk (the user's weights, or random initialisation on synthetic data; nothing is downloaded):
RoIAlign of every box to ``pool × pool`` cells on the trunk's map, flattened. Since the trunk
is frozen the features are computed once per data set and kept by the data module.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

from tailgraph.modeling.backbone import ResNetTrunk
from tailgraph.modeling.roi import rois_with_batch_index

__all__ = ["TrackletFeatureExtractor"]


class TrackletFeatureExtractor(nn.Module):
    """Frozen per-box RoI features.

    Args:
        depth: ResNet depth (18 / 34 / 50).
        weights_path: torchvision ResNet weights on disk; ``None`` = random initialisation.
        last_stage: last trunk stage (``layer2`` on CPU, ``layer4`` for real data).
        pool: RoIAlign cells per side; the feature size is ``channels × pool²``.

    Shapes:
        ``forward(images [F, 3, H, W], scales [F], boxes [N, 4], frame [N]) -> [N, out_dim]``
        with boxes in original pixels.
    """

    def __init__(
        self,
        depth: int = 18,
        weights_path: str | None = None,
        last_stage: str = "layer2",
        pool: int = 2,
    ) -> None:
        super().__init__()
        self.trunk = ResNetTrunk(
            depth, weights_path=weights_path, last_stage=last_stage, frozen=True
        )
        self.pool = pool
        self.out_dim = self.trunk.out_channels * pool * pool
        self.settings = {
            "depth": depth,
            "weights_path": weights_path,
            "last_stage": last_stage,
            "pool": pool,
        }
        self.eval()

    def train(self, mode: bool = True) -> TrackletFeatureExtractor:
        return super().train(False)  # always frozen

    @torch.no_grad()
    def forward(
        self, images: torch.Tensor, scales: torch.Tensor, boxes: torch.Tensor, frame: torch.Tensor
    ) -> torch.Tensor:
        if boxes.numel() == 0:
            return images.new_zeros((0, self.out_dim))
        fmap = self.trunk(images)
        rois = rois_with_batch_index(boxes.to(images.dtype), frame, scales)
        pooled = roi_align(
            fmap, rois, self.pool, 1.0 / self.trunk.stride, sampling_ratio=2, aligned=True
        )
        return pooled.flatten(1)
