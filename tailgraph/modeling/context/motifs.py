"""Neural Motifs context (Zellers et al., CVPR 2018): BiLSTMs over objects in a fixed order."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tailgraph.modeling.context.common import (
    FrequencyBias,
    ObjectInput,
    PairFromContext,
    pad_by_image,
    unpad,
)
from tailgraph.modeling.geometry import pair_geometry
from tailgraph.modeling.types import ContextModel, ContextOutput, RelationInputs

__all__ = ["MotifsContext", "motifs_order"]


def motifs_order(
    inp: RelationInputs, order: str = "leftright", scores: torch.Tensor | None = None
) -> torch.Tensor:
    """Sort key per object: objects of an image are visited by increasing key.

    ``leftright`` (the paper's default): box centre x; ``size``: decreasing box area;
    ``confidence``: decreasing object score (``scores`` ``[N]``, e.g. detector confidence;
    default ``inp.obj_scores``, else the largest foreground entry of ``inp.label_dists``).
    """
    b = inp.boxes
    if order == "leftright":
        key = (b[:, 0] + b[:, 2]) / 2
    elif order == "size":
        key = -(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    elif order == "confidence":
        if scores is None:
            scores = inp.obj_scores
        if scores is None and inp.label_dists is not None:
            scores = inp.label_dists[:, 1:].max(dim=1).values
        if scores is None:
            raise ValueError("order 'confidence' needs object scores")
        key = -scores
    else:
        raise ValueError(f"order must be leftright, size or confidence, got {order!r}")
    return key


class MotifsContext(ContextModel):
    """Object-context BiLSTM → object decoder LSTM (SGCls) → edge-context BiLSTM → head/tail
    pair representation, plus the frequency bias.

    Objects of each image are sorted by :func:`motifs_order`. In PredCls the decoder is
    skipped and GT labels are used; otherwise the decoder LSTM emits labels one object at a
    time, feeding the embedding of the previous object's predicted label (the paper's
    sequence-aware object classification).

    Args:
        class_names: object class names.
        num_predicates: predicate outputs ``R`` (frequency bias).
        obj_feat_dim, union_feat_dim: visual feature sizes (0 = none).
        hidden_dim: LSTM width; pair features have ``hidden_dim`` values.
        order: ``leftright`` | ``size`` | ``confidence``.
        use_freq_bias, pair_counts: frequency bias and its initial counts.
        dropout: dropout on LSTM inputs.

    Shapes:
        ``forward(RelationInputs) -> ContextOutput(pair_feats [P, hidden_dim], obj_logits [N, C],
        freq_logits [P, R] or None)``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        num_predicates: int,
        obj_feat_dim: int = 0,
        union_feat_dim: int = 0,
        hidden_dim: int = 256,
        order: str = "leftright",
        use_freq_bias: bool = True,
        pair_counts: torch.Tensor | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        c = len(class_names)
        self.order = order
        self.inputs = ObjectInput(class_names, obj_feat_dim)
        self.obj_ctx = nn.LSTM(
            self.inputs.out_dim, hidden_dim // 2, batch_first=True, bidirectional=True
        )
        self.decoder = nn.LSTMCell(hidden_dim + self.inputs.class_embed.dim, hidden_dim)
        self.obj_classifier = nn.Linear(hidden_dim, c)
        self.edge_ctx = nn.LSTM(
            hidden_dim + self.inputs.class_embed.dim,
            hidden_dim // 2,
            batch_first=True,
            bidirectional=True,
        )
        self.pair = PairFromContext(hidden_dim, hidden_dim, union_feat_dim)
        self.freq = FrequencyBias(c, num_predicates, pair_counts) if use_freq_bias else None
        self.dropout = nn.Dropout(dropout)
        self.num_classes = c
        self.hidden_dim = self.out_dim = hidden_dim

    def _sorted_batch(
        self, x: torch.Tensor, inp: RelationInputs
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pad ``x`` by image in MOTIFS order. Returns (padded, lengths, obj_to_img_sorted,
        rows)."""
        key = motifs_order(inp, self.order)
        # sort by image, then by key (stable)
        rows = torch.argsort(key, stable=True)
        rows = rows[torch.argsort(inp.obj_to_img[rows], stable=True)]
        padded, valid, pos = pad_by_image(x[rows], inp.obj_to_img[rows], inp.num_images)
        return padded, valid.sum(1), rows, pos

    def _bilstm(self, lstm: nn.LSTM, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            padded, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=padded.shape[1])
        return out

    def forward(self, inp: RelationInputs) -> ContextOutput:
        x = self.dropout(self.inputs(inp))
        padded, lengths, rows, pos = self._sorted_batch(x, inp)
        img_sorted = inp.obj_to_img[rows]
        ctx_sorted = unpad(self._bilstm(self.obj_ctx, padded, lengths), img_sorted, pos)
        obj_ctx = torch.empty_like(ctx_sorted)
        obj_ctx[rows] = ctx_sorted
        emb = self.inputs.class_embed
        if inp.labels is not None:  # PredCls
            labels = inp.labels
            dists = nn.functional.one_hot(labels, self.num_classes).to(obj_ctx.dtype)
            obj_logits = self.obj_classifier(obj_ctx)
        else:
            obj_logits, labels = self._decode(obj_ctx, rows, img_sorted, pos, inp.num_images)
            dists = torch.softmax(obj_logits, dim=1)
        e = torch.cat([obj_ctx, emb.soft(dists)], dim=1)
        padded, lengths, rows2, pos2 = self._sorted_batch(e, inp)
        edge_sorted = unpad(
            self._bilstm(self.edge_ctx, padded, lengths), inp.obj_to_img[rows2], pos2
        )
        edge_ctx = torch.empty_like(edge_sorted)
        edge_ctx[rows2] = edge_sorted
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

    def _decode(
        self,
        obj_ctx: torch.Tensor,
        rows: torch.Tensor,
        img_sorted: torch.Tensor,
        pos: torch.Tensor,
        num_images: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy sequential decoding of object labels in MOTIFS order (all images at once)."""
        ctx_sorted = obj_ctx[rows]
        padded, valid, _ = pad_by_image(ctx_sorted, img_sorted, num_images)
        b, length, _ = padded.shape
        h = padded.new_zeros((b, self.decoder.hidden_size))
        c = padded.new_zeros((b, self.decoder.hidden_size))
        prev = padded.new_zeros((b, self.inputs.class_embed.dim))
        logits_steps = []
        for t in range(length):
            h, c = self.decoder(torch.cat([padded[:, t], prev], dim=1), (h, c))
            logit = self.obj_classifier(h)
            logits_steps.append(logit)
            label = 1 + logit[:, 1:].argmax(dim=1)
            prev = self.inputs.class_embed(label).detach()
        logits_pad = torch.stack(logits_steps, dim=1)  # [B, L, C]
        logits_sorted = logits_pad[img_sorted, pos]
        logits = torch.empty_like(logits_sorted)
        logits[rows] = logits_sorted
        return logits, 1 + logits[:, 1:].argmax(dim=1)
