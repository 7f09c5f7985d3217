"""The relation classifier of "Visual Relationship Classification with Negative-Sample Mining"
(Open Images VRD), methods.md §5 and seed 002.

Three inputs: visual (ResNet-18), spatial (CoordConv-style position maps) and object class
(two learned embedding tables). Choices the slides leave open, documented here:

* stage 1 = ResNet-18 ``stem … layer2`` on the whole image (stride 8); RoIAlign samples a
  ``2·roi_size`` grid for the subject, object and union boxes; stage 2 = ``layer3`` per RoI
  (stride 2 → ``roi_size × roi_size``, 256 channels);
* CoordConv: for each RoI, 2 maps holding the x and y positions of its sampling grid
  *relative to the union box* (0 = union's left/top edge, 1 = right/bottom edge), so the maps
  encode where the subject and object lie in the union and how large they are. They are
  concatenated to the RoI's stage-2 output (256 + 2 channels);
* stage 3: the three RoI maps concatenated (3 × 258 channels) → two 3×3 convolutions with 512
  filters → global average pooling → FC to the visual vector;
* class embeddings: subject and object tables (``embed_dim`` each), concatenated to the visual
  vector; the classifier is linear over {no relation} ∪ predicates, trained with softmax
  cross-entropy (the slides do not name the loss).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

from tailgraph.modeling.backbone import ResNetTrunk
from tailgraph.modeling.geometry import union_boxes
from tailgraph.modeling.roi import rois_with_batch_index

__all__ = ["coordconv_maps", "NegativeMiningNet"]


def coordconv_maps(sub_boxes: torch.Tensor, obj_boxes: torch.Tensor, union: torch.Tensor, size: int) -> torch.Tensor:
    """Position maps of the subject, object and union RoIs, relative to the union box.

    Args:
        sub_boxes, obj_boxes, union: ``[P, 4]`` xyxy.
        size: map resolution (the RoI feature size).
    Returns:
        ``[P, 6, size, size]``: (x, y) maps of subject, object, union. Cell ``(i, j)`` of a RoI
        holds ``((x1 + (j + ½)/size · w) − ux1) / uw`` and the same for y, where ``u`` is the
        union box.
    """
    steps = (torch.arange(size, dtype=union.dtype, device=union.device) + 0.5) / size
    uw = (union[:, 2] - union[:, 0]).clamp_min(1e-6)
    uh = (union[:, 3] - union[:, 1]).clamp_min(1e-6)
    maps = []
    for box in (sub_boxes, obj_boxes, union):
        xs = (box[:, 0:1] + steps * (box[:, 2:3] - box[:, 0:1]) - union[:, 0:1]) / uw[:, None]  # [P, size]
        ys = (box[:, 1:2] + steps * (box[:, 3:4] - box[:, 1:2]) - union[:, 1:2]) / uh[:, None]
        maps.append(xs[:, None, :].expand(-1, size, -1))  # x varies along columns
        maps.append(ys[:, :, None].expand(-1, -1, size))  # y varies along rows
    return torch.stack(maps, dim=1)


class NegativeMiningNet(nn.Module):
    """Visual + CoordConv + class-embedding relation classifier.

    Args:
        num_classes: object classes ``C`` (incl. background).
        num_predicates: outputs ``R`` incl. "no relation" at index 0.
        weights_path: torchvision ResNet-18 weights on disk; ``None`` = random initialisation.
        roi_size: spatial size of each RoI after stage 2.
        visual_dim: size of the visual vector.
        embed_dim: size of each class embedding.
        use_visual, use_coordconv, use_embeddings: the paper's ablation switches.

    Shapes:
        ``forward(images [B, 3, H, W], scales [B], boxes [N, 4], obj_to_img [N], labels [N],
        pairs [P, 2]) -> logits [P, R]`` (boxes in original pixels; ``scales`` map them to
        ``images``).
    """

    def __init__(self, num_classes: int, num_predicates: int, weights_path: str | None = None, roi_size: int = 7,
                 visual_dim: int = 512, embed_dim: int = 64, use_visual: bool = True, use_coordconv: bool = True,
                 use_embeddings: bool = True) -> None:
        super().__init__()
        if not (use_visual or use_embeddings):
            raise ValueError("the classifier needs visual features or class embeddings")
        self.use_visual, self.use_coordconv, self.use_embeddings = use_visual, use_coordconv, use_embeddings
        self.roi_size = roi_size
        in_dim = 0
        if use_visual:
            trunk = ResNetTrunk(18, weights_path=weights_path, last_stage="layer3")
            self.stage1 = nn.Sequential(trunk.stages["stem"], trunk.stages["layer1"], trunk.stages["layer2"])
            self.stage2 = trunk.stages["layer3"]
            c = 256 + (2 if use_coordconv else 0)
            self.stage3 = nn.Sequential(
                nn.Conv2d(3 * c, 512, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(512, 512, 3, padding=1), nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
            self.visual_fc = nn.Sequential(nn.Linear(512, visual_dim), nn.ReLU(inplace=True))
            in_dim += visual_dim
        if use_embeddings:
            self.sub_embed = nn.Embedding(num_classes, embed_dim)
            self.obj_embed = nn.Embedding(num_classes, embed_dim)
            in_dim += 2 * embed_dim
        self.classifier = nn.Linear(in_dim, num_predicates)

    def forward(self, images: torch.Tensor, scales: torch.Tensor, boxes: torch.Tensor, obj_to_img: torch.Tensor,
                labels: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        s, o = pairs[:, 0], pairs[:, 1]
        parts = []
        if self.use_visual:
            fmap = self.stage1(images)
            img = obj_to_img[s]
            ub = union_boxes(boxes, pairs)
            maps = []
            coords = coordconv_maps(boxes[s], boxes[o], ub, self.roi_size) if self.use_coordconv else None
            for k, bx in enumerate((boxes[s], boxes[o], ub)):
                pooled = roi_align(fmap, rois_with_batch_index(bx, img, scales), 2 * self.roi_size, 1 / 8, sampling_ratio=2, aligned=True)
                r = self.stage2(pooled)  # [P, 256, roi, roi]
                if coords is not None:
                    r = torch.cat([r, coords[:, 2 * k:2 * k + 2]], dim=1)
                maps.append(r)
            parts.append(self.visual_fc(self.stage3(torch.cat(maps, dim=1))))
        if self.use_embeddings:
            parts += [self.sub_embed(labels[s]), self.obj_embed(labels[o])]
        return self.classifier(torch.cat(parts, dim=1))
