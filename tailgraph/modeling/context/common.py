"""Pieces shared by the message-passing context models (MOTIFS, VCTree, Transformer)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tailgraph.modeling.embeddings import ClassEmbedding
from tailgraph.modeling.geometry import BOX_GEOMETRY_DIM, box_geometry
from tailgraph.modeling.types import RelationInputs

__all__ = ["pad_by_image", "unpad", "FrequencyBias", "ObjectInput", "PairFromContext"]


def pad_by_image(
    x: torch.Tensor, obj_to_img: torch.Tensor, num_images: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group rows by image into a zero-padded batch.

    Returns:
        ``(padded [B, L, D], valid [B, L] bool, position [N])`` where ``position[i]`` is row i's
        slot in its image (rows keep their order within an image).
    """
    counts = torch.bincount(obj_to_img, minlength=num_images)
    length = int(counts.max()) if counts.numel() else 0
    order = torch.argsort(obj_to_img, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.empty_like(obj_to_img)
    pos[order] = torch.arange(obj_to_img.shape[0], device=x.device) - starts[obj_to_img[order]]
    padded = x.new_zeros((num_images, max(length, 1), x.shape[1]))
    padded[obj_to_img, pos] = x
    valid = torch.zeros((num_images, max(length, 1)), dtype=torch.bool, device=x.device)
    valid[obj_to_img, pos] = True
    return padded, valid, pos


def unpad(padded: torch.Tensor, obj_to_img: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pad_by_image`: ``[N, D]`` rows in the original order."""
    return padded[obj_to_img, pos]


class FrequencyBias(nn.Module):
    """MOTIFS' frequency bias: a learnable ``[C·C, R]`` table of logits indexed by (subject
    class, object class), initialised with the log of the smoothed empirical predicate
    distribution of the training set.

    Args:
        num_classes: ``C``.
        num_predicates: ``R``.
        pair_counts: ``[C, C, R]`` training counts
            (:func:`tailgraph.modeling.freq.pair_predicate_counts`);
            ``None`` = zeros (e.g. before a checkpoint is loaded).
        smoothing: pseudo-count per cell.

    Shapes:
        ``forward(sub_labels [P], obj_labels [P]) -> [P, R]``;
        ``soft(sub_dists [P, C], obj_dists [P, C]) -> [P, R]`` (expected bias under the
        label distributions, for SGCls / SGDet).
    """

    def __init__(
        self,
        num_classes: int,
        num_predicates: int,
        pair_counts: torch.Tensor | None = None,
        smoothing: float = 1.0,
    ) -> None:
        super().__init__()
        self.c, self.r = num_classes, num_predicates
        self.table = nn.Embedding(num_classes * num_classes, num_predicates)
        with torch.no_grad():
            if pair_counts is None:
                self.table.weight.zero_()
            else:
                counts = torch.as_tensor(pair_counts, dtype=torch.float32).reshape(
                    num_classes * num_classes, num_predicates
                )
                probs = (counts + smoothing) / (counts + smoothing).sum(dim=1, keepdim=True)
                self.table.weight.copy_(probs.log())

    def forward(self, sub_labels: torch.Tensor, obj_labels: torch.Tensor) -> torch.Tensor:
        return self.table(sub_labels * self.c + obj_labels)

    def soft(self, sub_dists: torch.Tensor, obj_dists: torch.Tensor) -> torch.Tensor:
        joint = (sub_dists.unsqueeze(2) * obj_dists.unsqueeze(1)).reshape(sub_dists.shape[0], -1)
        return joint @ self.table.weight


class ObjectInput(nn.Module):
    """Per-object input vector: visual feature ‖ class embedding (soft) ‖ box-geometry MLP.

    Args:
        class_names: object class names (GloVe-initialised embedding).
        obj_feat_dim: visual feature size (0 = layout-only).
        embed_dim: class-embedding size.
        pos_dim: size of the box-geometry embedding.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        obj_feat_dim: int = 0,
        embed_dim: int = 50,
        pos_dim: int = 64,
    ) -> None:
        super().__init__()
        self.class_embed = ClassEmbedding(list(class_names), dim=embed_dim)
        self.pos = nn.Sequential(nn.Linear(BOX_GEOMETRY_DIM, pos_dim), nn.ReLU(inplace=True))
        self.obj_feat_dim = obj_feat_dim
        self.out_dim = obj_feat_dim + embed_dim + pos_dim

    def label_dists(self, inp: RelationInputs) -> torch.Tensor:
        if inp.label_dists is not None:
            return inp.label_dists
        if inp.labels is None:  # SGCls without detector scores: no class information yet
            return inp.boxes.new_zeros((inp.boxes.shape[0], self.class_embed.num_classes))
        return nn.functional.one_hot(inp.labels, self.class_embed.num_classes).to(inp.boxes.dtype)

    def forward(self, inp: RelationInputs, dists: torch.Tensor | None = None) -> torch.Tensor:
        d = self.label_dists(inp) if dists is None else dists
        parts = []
        if self.obj_feat_dim:
            if inp.obj_feats is None:
                raise ValueError(
                    f"this context model expects visual object features of size {self.obj_feat_dim}"
                )
            parts.append(inp.obj_feats)
        parts += [
            self.class_embed.soft(d),
            self.pos(box_geometry(inp.boxes, inp.image_sizes, inp.obj_to_img)),
        ]
        return torch.cat(parts, dim=1)


class PairFromContext(nn.Module):
    """MOTIFS-style pair representation: head / tail projections of the edge context,
    element-wise product, multiplied by a projection of the union-box feature when given,
    plus the pair geometry.

    Shapes:
        ``forward(edge_ctx [N, H], pairs [P, 2], union_feats [P, U] | None, geometry [P, G])
        -> [P, out_dim]``.
    """

    def __init__(
        self, in_dim: int, out_dim: int, union_feat_dim: int = 0, geometry_dim: int = 13
    ) -> None:
        super().__init__()
        self.head_tail = nn.Linear(in_dim, 2 * out_dim)
        self.union = nn.Linear(union_feat_dim, out_dim) if union_feat_dim else None
        self.geometry = nn.Sequential(nn.Linear(geometry_dim, out_dim), nn.ReLU(inplace=True))
        self.out_dim = out_dim

    def forward(
        self,
        edge_ctx: torch.Tensor,
        pairs: torch.Tensor,
        union_feats: torch.Tensor | None,
        geometry: torch.Tensor,
    ) -> torch.Tensor:
        h, t = self.head_tail(edge_ctx).chunk(2, dim=1)
        rep = h[pairs[:, 0]] * t[pairs[:, 1]]
        if self.union is not None:
            if union_feats is None:
                raise ValueError("this context model expects union features")
            rep = rep * self.union(union_feats)
        return torch.relu(rep) + self.geometry(geometry)
