"""Transformer context (the "Transformer" predictor of Scene-Graph-Benchmark)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tailgraph.modeling.context.common import (
    FrequencyBias,
    ObjectInput,
    PairFromContext,
    pad_by_image,
    unpad,
)
from tailgraph.modeling.geometry import pair_geometry
from tailgraph.modeling.types import ContextModel, ContextOutput, RelationInputs

__all__ = ["TransformerContext"]


class TransformerContext(ContextModel):
    """Object self-attention encoder → object logits (SGCls) → edge self-attention encoder →
    head/tail pair representation, with an optional frequency bias.

    Attention runs among the objects of one image (padded batch with a key-padding mask).

    Args:
        class_names: object class names (index order).
        num_predicates: predicate outputs ``R`` (for the frequency bias).
        obj_feat_dim, union_feat_dim: visual feature sizes (0 = none / layout-only).
        hidden_dim: model width; ``out_dim`` of the pair features.
        obj_layers, edge_layers: encoder depths (SGB: 4 and 2).
        num_heads: attention heads.
        dropout: dropout in the encoders.
        use_freq_bias: return MOTIFS' frequency bias as ``freq_logits``.
        pair_counts: ``[C, C, R]`` training counts initialising the bias.

    Shapes:
        ``forward(RelationInputs) -> ContextOutput(pair_feats [P, hidden_dim],
        obj_logits [N, C], freq_logits [P, R] or None)``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        num_predicates: int,
        obj_feat_dim: int = 0,
        union_feat_dim: int = 0,
        hidden_dim: int = 256,
        obj_layers: int = 2,
        edge_layers: int = 1,
        num_heads: int = 4,
        dropout: float = 0.1,
        use_freq_bias: bool = True,
        pair_counts: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        c = len(class_names)
        self.inputs = ObjectInput(class_names, obj_feat_dim)
        self.obj_in = nn.Linear(self.inputs.out_dim, hidden_dim)

        def encoder(layers: int) -> nn.TransformerEncoder:
            layer = nn.TransformerEncoderLayer(
                hidden_dim, num_heads, 2 * hidden_dim, dropout, batch_first=True
            )
            return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

        self.obj_encoder = encoder(obj_layers)
        self.obj_classifier = nn.Linear(hidden_dim, c)
        self.edge_in = nn.Linear(hidden_dim + self.inputs.class_embed.dim, hidden_dim)
        self.edge_encoder = encoder(edge_layers)
        self.pair = PairFromContext(hidden_dim, hidden_dim, union_feat_dim)
        self.freq = FrequencyBias(c, num_predicates, pair_counts) if use_freq_bias else None
        self.hidden_dim = self.out_dim = hidden_dim

    def forward(self, inp: RelationInputs) -> ContextOutput:
        b = inp.num_images
        x = self.obj_in(self.inputs(inp))
        padded, valid, pos = pad_by_image(x, inp.obj_to_img, b)
        obj_ctx = unpad(self.obj_encoder(padded, src_key_padding_mask=~valid), inp.obj_to_img, pos)
        obj_logits = self.obj_classifier(obj_ctx)
        if inp.labels is not None:  # PredCls: GT labels
            labels = inp.labels
            dists = nn.functional.one_hot(labels, obj_logits.shape[1]).to(obj_ctx.dtype)
        else:
            dists = torch.softmax(obj_logits, dim=1)
            labels = 1 + dists[:, 1:].argmax(dim=1)
        e = self.edge_in(torch.cat([obj_ctx, self.inputs.class_embed.soft(dists)], dim=1))
        padded, valid, pos = pad_by_image(e, inp.obj_to_img, b)
        edge_ctx = unpad(
            self.edge_encoder(padded, src_key_padding_mask=~valid), inp.obj_to_img, pos
        )
        s, o = inp.pairs[:, 0], inp.pairs[:, 1]
        feats = self.pair(
            edge_ctx, inp.pairs, inp.union_feats, pair_geometry(inp.boxes[s], inp.boxes[o])
        )
        freq = None
        if self.freq is not None:
            freq = (
                self.freq(labels[s], labels[o])
                if inp.labels is not None
                else self.freq.soft(dists[s], dists[o])
            )
        return ContextOutput(pair_feats=feats, obj_logits=obj_logits, freq_logits=freq)
