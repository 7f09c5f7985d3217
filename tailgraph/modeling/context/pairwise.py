"""The plain pairwise-MLP context model (no message passing between objects)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tailgraph.modeling.embeddings import ClassEmbedding
from tailgraph.modeling.geometry import (
    BOX_GEOMETRY_DIM,
    PAIR_GEOMETRY_DIM,
    box_geometry,
    pair_geometry,
)
from tailgraph.modeling.types import ContextModel, ContextOutput, RelationInputs

__all__ = ["PairwiseMLPContext"]


class PairwiseMLPContext(ContextModel):
    """Each object is encoded from its visual feature, class embedding and box geometry; each
    ordered pair from its subject and object codes, their relative geometry and (when given)
    the union-box feature.

    Args:
        class_names: object class names (index order) for the GloVe-initialised embedding.
        obj_feat_dim: size of the visual object features; 0 = layout-only (no pixels).
        union_feat_dim: size of the union-box features; 0 = none.
        embed_dim: class-embedding size (50 = GloVe's).
        hidden_dim: object code and pair feature size.
        dropout: dropout on the pair MLP.
        use_geometry: include box / pair geometry features.

    Shapes:
        ``forward(inp: RelationInputs) -> ContextOutput(pair_feats [P, hidden_dim])``; uses
        ``inp.label_dists`` ``[N, C]`` (soft labels) when given, else ``inp.labels`` ``[N]``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        obj_feat_dim: int = 0,
        union_feat_dim: int = 0,
        embed_dim: int = 50,
        hidden_dim: int = 256,
        dropout: float = 0.1,
        use_geometry: bool = True,
    ) -> None:
        super().__init__()
        self.class_embed = ClassEmbedding(list(class_names), dim=embed_dim)
        self.obj_feat_dim = obj_feat_dim
        self.union_feat_dim = union_feat_dim
        self.use_geometry = use_geometry
        self.hidden_dim = hidden_dim
        self.out_dim = hidden_dim
        obj_in = embed_dim + obj_feat_dim + (BOX_GEOMETRY_DIM if use_geometry else 0)
        self.obj_encoder = nn.Sequential(
            nn.Linear(obj_in, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(inplace=True),
        )
        pair_in = 2 * hidden_dim + (PAIR_GEOMETRY_DIM if use_geometry else 0) + union_feat_dim
        self.pair_encoder = nn.Sequential(
            nn.Linear(pair_in, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, inp: RelationInputs) -> ContextOutput:
        if inp.label_dists is not None:
            emb = self.class_embed.soft(inp.label_dists.to(self.class_embed.embedding.weight.dtype))
        elif inp.labels is not None:
            emb = self.class_embed(inp.labels)
        else:
            raise ValueError("PairwiseMLPContext needs labels or label_dists")
        parts = [emb]
        if self.obj_feat_dim:
            if inp.obj_feats is None:
                raise ValueError(
                    f"this context model expects visual object features of size {self.obj_feat_dim}"
                )
            parts.append(inp.obj_feats)
        if self.use_geometry:
            parts.append(box_geometry(inp.boxes, inp.image_sizes, inp.obj_to_img))
        codes = self.obj_encoder(torch.cat(parts, dim=1))
        s, o = inp.pairs[:, 0], inp.pairs[:, 1]
        pair_parts = [codes[s], codes[o]]
        if self.use_geometry:
            pair_parts.append(pair_geometry(inp.boxes[s], inp.boxes[o]))
        if self.union_feat_dim:
            if inp.union_feats is None:
                raise ValueError(
                    f"this context model expects union features of size {self.union_feat_dim}"
                )
            pair_parts.append(inp.union_feats)
        return ContextOutput(pair_feats=self.pair_encoder(torch.cat(pair_parts, dim=1)))
