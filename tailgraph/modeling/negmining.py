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
* class embeddings: subject and object linear embedding matrices (``embed_dim`` each) applied
  to the label distributions, concatenated to the visual vector; the classifier is linear over
  {no relation} ∪ predicates, trained with softmax cross-entropy (the slides do not name the
  loss).

In the engine the network is three recipe components: :class:`NegativeMiningFeatures` (the
visual vector of each pair, as its ``union_feats``), :class:`NegativeMiningContext` (visual
vector ⊕ embeddings) and a linear head; :class:`NegativeMiningNet` composes them for use
outside the engine.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

from tailgraph.modeling.backbone import ResNetTrunk
from tailgraph.modeling.geometry import union_boxes
from tailgraph.modeling.roi import rois_with_batch_index
from tailgraph.modeling.types import ContextModel, ContextOutput, FeatureStage, RelationInputs

__all__ = ["coordconv_maps", "NegativeMiningFeatures", "NegativeMiningContext", "NegativeMiningNet"]


def coordconv_maps(
    sub_boxes: torch.Tensor, obj_boxes: torch.Tensor, union: torch.Tensor, size: int
) -> torch.Tensor:
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
        xs = (box[:, 0:1] + steps * (box[:, 2:3] - box[:, 0:1]) - union[:, 0:1]) / uw[
            :, None
        ]  # [P, size]
        ys = (box[:, 1:2] + steps * (box[:, 3:4] - box[:, 1:2]) - union[:, 1:2]) / uh[:, None]
        maps.append(xs[:, None, :].expand(-1, size, -1))  # x varies along columns
        maps.append(ys[:, :, None].expand(-1, -1, size))  # y varies along rows
    return torch.stack(maps, dim=1)


class NegativeMiningFeatures(FeatureStage):
    """The visual input as a feature stage: one visual vector per candidate pair.

    Fits the features contract of :class:`tailgraph.modeling.relation_model.RelationModel`
    (``feature_map`` / ``object_features`` / ``union_features_of`` / ``forward``): the pair's
    visual vector is its ``union_feats``; ``obj_feats`` are RoIAlign averages of the stage-1
    map (cheap, for SGCls object classifiers).

    Args:
        weights_path: torchvision ResNet-18 weights on disk; ``None`` = random initialisation.
        roi_size: spatial size of each RoI after stage 2 (RoIAlign samples ``2·roi_size``).
        visual_dim: size of the visual vector.
        stage3_channels: filters of the two stage-3 convolutions (slides: 512).
        use_coordconv: add the CoordConv maps to the stage-2 outputs.

    Attributes:
        obj_dim: 128 (ResNet-18 ``layer2`` channels); union_dim: ``visual_dim``.
    """

    union_features = True

    def __init__(
        self,
        weights_path: str | None = None,
        roi_size: int = 7,
        visual_dim: int = 512,
        stage3_channels: int = 512,
        use_coordconv: bool = True,
    ) -> None:
        super().__init__()
        trunk = ResNetTrunk(18, weights_path=weights_path, last_stage="layer3")
        self.stage1 = nn.Sequential(
            trunk.stages["stem"], trunk.stages["layer1"], trunk.stages["layer2"]
        )
        self.stage2 = trunk.stages["layer3"]
        self.roi_size, self.use_coordconv = roi_size, use_coordconv
        c = 256 + (2 if use_coordconv else 0)
        self.stage3 = nn.Sequential(
            nn.Conv2d(3 * c, stage3_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(stage3_channels, stage3_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.visual_fc = nn.Sequential(
            nn.Linear(stage3_channels, visual_dim), nn.ReLU(inplace=True)
        )
        self.obj_dim, self.union_dim, self.out_dim = 128, visual_dim, visual_dim

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """Stage 1 (ResNet-18 ``stem … layer2``, stride 8) on the whole batch."""
        return self.stage1(images)

    def object_features(
        self,
        fmap: torch.Tensor,
        scales: torch.Tensor,
        boxes: torch.Tensor,
        obj_to_img: torch.Tensor,
    ) -> torch.Tensor:
        pooled = roi_align(
            fmap,
            rois_with_batch_index(boxes, obj_to_img, scales),
            self.roi_size,
            1 / 8,
            sampling_ratio=2,
            aligned=True,
        )
        return pooled.mean(dim=(2, 3))

    def union_features_of(
        self,
        fmap: torch.Tensor,
        scales: torch.Tensor,
        boxes: torch.Tensor,
        obj_to_img: torch.Tensor,
        pairs: torch.Tensor,
    ) -> torch.Tensor:
        """``[P, visual_dim]`` visual vectors of ``pairs`` (global object rows)."""
        if pairs.shape[0] == 0:
            return fmap.new_zeros((0, self.union_dim))
        s, o = pairs[:, 0], pairs[:, 1]
        img = obj_to_img[s]
        ub = union_boxes(boxes, pairs)
        coords = (
            coordconv_maps(boxes[s], boxes[o], ub, self.roi_size) if self.use_coordconv else None
        )
        maps = []
        for k, bx in enumerate((boxes[s], boxes[o], ub)):
            pooled = roi_align(
                fmap,
                rois_with_batch_index(bx, img, scales),
                2 * self.roi_size,
                1 / 8,
                sampling_ratio=2,
                aligned=True,
            )
            r = self.stage2(pooled)  # [P, 256, roi, roi]
            if coords is not None:
                r = torch.cat([r, coords[:, 2 * k : 2 * k + 2].to(r.dtype)], dim=1)
            maps.append(r)
        return self.visual_fc(self.stage3(torch.cat(maps, dim=1)))

    def forward(
        self,
        images: torch.Tensor,
        scales: torch.Tensor,
        boxes: torch.Tensor,
        obj_to_img: torch.Tensor,
        pairs: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.feature_map(images)
        return self.object_features(fmap, scales, boxes, obj_to_img), self.union_features_of(
            fmap, scales, boxes, obj_to_img, pairs
        )


class NegativeMiningContext(ContextModel):
    """The classifier's input: the pair's visual vector and the two class embeddings.

    Args:
        num_classes: object classes ``C`` (incl. background).
        union_feat_dim: size of the visual vector (0 = no visual input).
        embed_dim: size of each class embedding.
        use_visual, use_embeddings: the slides' ablation switches.

    Shapes:
        ``forward(RelationInputs) -> ContextOutput(pair_feats [P, visual + 2·embed])``; the
        embeddings are linear maps of the label distributions (one-hot in PredCls).
    """

    def __init__(
        self,
        num_classes: int,
        union_feat_dim: int = 0,
        embed_dim: int = 64,
        use_visual: bool = True,
        use_embeddings: bool = True,
    ) -> None:
        super().__init__()
        if use_visual and not union_feat_dim:
            raise ValueError(
                "use_visual needs visual features: give the recipe NegativeMiningFeatures"
            )
        if not (use_visual or use_embeddings):
            raise ValueError("the classifier needs visual features or class embeddings")
        self.use_visual, self.use_embeddings, self.num_classes = (
            use_visual,
            use_embeddings,
            num_classes,
        )
        out = union_feat_dim if use_visual else 0
        if use_embeddings:
            self.sub_embed = nn.Linear(num_classes, embed_dim, bias=False)
            self.obj_embed = nn.Linear(num_classes, embed_dim, bias=False)
            out += 2 * embed_dim
        self.out_dim = self.hidden_dim = out

    def forward(self, inp: RelationInputs) -> ContextOutput:
        s, o = inp.pairs[:, 0], inp.pairs[:, 1]
        parts = []
        if self.use_visual:
            if inp.union_feats is None:
                raise ValueError(
                    "NegativeMiningContext with use_visual needs the visual vectors (union_feats)"
                )
            parts.append(inp.union_feats)
        if self.use_embeddings:
            dists = inp.label_dists
            if dists is None:
                dists = nn.functional.one_hot(inp.labels, self.num_classes).float()  # type: ignore[arg-type]
            parts += [
                self.sub_embed(dists[s].to(self.sub_embed.weight.dtype)),
                self.obj_embed(dists[o].to(self.obj_embed.weight.dtype)),
            ]
        return ContextOutput(pair_feats=torch.cat(parts, dim=1))


class NegativeMiningNet(nn.Module):
    """Visual + CoordConv + class-embedding relation classifier in one module
    (:class:`NegativeMiningFeatures` → :class:`NegativeMiningContext` → linear classifier).

    Args:
        num_classes: object classes ``C`` (incl. background).
        num_predicates: outputs ``R`` incl. "no relation" at index 0.
        weights_path: torchvision ResNet-18 weights on disk; ``None`` = random initialisation.
        roi_size: spatial size of each RoI after stage 2.
        visual_dim: size of the visual vector.
        embed_dim: size of each class embedding.
        stage3_channels: filters of the stage-3 convolutions.
        use_visual, use_coordconv, use_embeddings: the paper's ablation switches.

    Shapes:
        ``forward(images [B, 3, H, W], scales [B], boxes [N, 4], obj_to_img [N], labels [N],
        pairs [P, 2]) -> logits [P, R]`` (boxes in original pixels; ``scales`` map them to
        ``images``).
    """

    def __init__(
        self,
        num_classes: int,
        num_predicates: int,
        weights_path: str | None = None,
        roi_size: int = 7,
        visual_dim: int = 512,
        embed_dim: int = 64,
        use_visual: bool = True,
        use_coordconv: bool = True,
        use_embeddings: bool = True,
        stage3_channels: int = 512,
    ) -> None:
        super().__init__()
        if not (use_visual or use_embeddings):
            raise ValueError("the classifier needs visual features or class embeddings")
        self.features = (
            NegativeMiningFeatures(
                weights_path, roi_size, visual_dim, stage3_channels, use_coordconv
            )
            if use_visual
            else None
        )
        self.context = NegativeMiningContext(
            num_classes, visual_dim if use_visual else 0, embed_dim, use_visual, use_embeddings
        )
        self.classifier = nn.Linear(self.context.out_dim, num_predicates)  # type: ignore[arg-type]
        self.num_classes = num_classes

    @property
    def stage1(self) -> nn.Module:
        return self.features.stage1  # type: ignore[union-attr]

    @property
    def sub_embed(self) -> nn.Module:
        return self.context.sub_embed

    def forward(
        self,
        images: torch.Tensor,
        scales: torch.Tensor,
        boxes: torch.Tensor,
        obj_to_img: torch.Tensor,
        labels: torch.Tensor,
        pairs: torch.Tensor,
    ) -> torch.Tensor:
        union = None
        if self.features is not None:
            union = self.features.union_features_of(
                self.features.feature_map(images), scales, boxes, obj_to_img, pairs
            )
        n_img = int(obj_to_img.max()) + 1 if obj_to_img.numel() else 0
        inp = RelationInputs(
            boxes=boxes,
            image_sizes=boxes.new_zeros((n_img, 2)),
            obj_to_img=obj_to_img,
            labels=labels,
            label_dists=nn.functional.one_hot(labels, self.num_classes).float(),
            pairs=pairs,
            pair_to_img=obj_to_img[pairs[:, 0]],
            union_feats=union,
        )
        return self.classifier(self.context(inp).pair_feats)
