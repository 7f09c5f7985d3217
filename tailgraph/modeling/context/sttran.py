"""STTran / TEMPURA spatio-temporal relation model for Action Genome (methods.md §0).

One batch is one video: ``RelationInputs.obj_to_img`` is the frame of each object and
``pairs`` the (person, object) pairs of every frame.

Relation feature (:class:`RelationFeatureMixin`): subject and object RoI features → Linear →
``proj_dim`` each; the union branch: the union box's RoIAlign 7×7 map → 1×1 conv (256) plus a
2-channel 27×27 box-mask image (subject / object masks inside the union box, values shifted by
−0.5) → conv 7×7/2 (128) + ReLU + BN + max-pool + conv 3×3 (256) + ReLU + BN, the two 256×7×7
maps summed, flattened → Linear → ``proj_dim`` (with a features stage that returns union
*vectors*, the vector → Linear and the flattened mask map → Linear are summed instead); subject
and object class embeddings (two GloVe-initialised tables of ``embed_dim``); all concatenated.

Spatial encoder: one post-norm transformer layer over the pairs of each frame. Temporal
decoder: ``temporal_layers`` self-attention layers over sliding windows of two consecutive
frames with a learned 2-row frame embedding added to the queries and keys only (as STTran's
decoder; ``frame_embed_on="inputs"`` adds it to the layer input instead, which also puts it in
the values and the residual); each frame takes the output of the window in which it is the
later frame (frame 0 from window 0).

TEMPURA's memory bank (:class:`tailgraph.modeling.memory.RelationMemory`, option ``memory``)
fuses the class-mean memory into each relation feature after the temporal decoder (``late``)
or after the spatial encoder (``early``); the pre-fusion features are returned in
``ContextOutput.memory_writes`` for the training method to accumulate
(:class:`tailgraph.methods.tempura.Tempura`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tailgraph.modeling.context.common import pad_by_image, unpad
from tailgraph.modeling.embeddings import ClassEmbedding
from tailgraph.modeling.types import ContextModel, ContextOutput, RelationInputs

__all__ = [
    "STTranContext",
    "RelationFeatureMixin",
    "box_masks",
    "sinusoidal_encoding",
    "PositionalDecoderLayer",
]


class PositionalDecoderLayer(nn.Module):
    """Post-norm self-attention layer whose position embedding enters queries and keys only:
    ``x ← LN(x + Drop(Attn(x + pos, x + pos, x)))``, ``x ← LN(x + Drop(FF(x)))``."""

    def __init__(self, d: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, num_heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(
            nn.Linear(d, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, d)
        )
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        qk = x + pos
        att = self.attn(qk, qk, x, key_padding_mask=key_padding_mask, need_weights=False)[0]
        x = self.norm1(x + self.drop1(att))
        return self.norm2(x + self.drop2(self.ff(x)))


def box_masks(sub: torch.Tensor, obj: torch.Tensor, size: int = 27) -> torch.Tensor:
    """``[P, 2, size, size]`` masks of the subject and object boxes inside their union box,
    1 inside the box and 0 outside, then shifted by −0.5 (as STTran's ``draw_union_boxes``)."""
    ub = torch.cat(
        [torch.minimum(sub[:, :2], obj[:, :2]), torch.maximum(sub[:, 2:], obj[:, 2:])], dim=1
    )
    w = (ub[:, 2] - ub[:, 0]).clamp_min(1e-6)
    h = (ub[:, 3] - ub[:, 1]).clamp_min(1e-6)
    grid = (torch.arange(size, device=sub.device, dtype=sub.dtype) + 0.5) / size
    out = []
    for b in (sub, obj):
        x1, x2 = ((b[:, 0] - ub[:, 0]) / w)[:, None], ((b[:, 2] - ub[:, 0]) / w)[:, None]
        y1, y2 = ((b[:, 1] - ub[:, 1]) / h)[:, None], ((b[:, 3] - ub[:, 1]) / h)[:, None]
        inx = (grid[None] >= x1) & (grid[None] <= x2)  # [P, size]
        iny = (grid[None] >= y1) & (grid[None] <= y2)
        out.append((iny[:, :, None] & inx[:, None, :]).to(sub.dtype))
    return torch.stack(out, dim=1) - 0.5


class RelationFeatureMixin:
    """TEMPURA's 1936-d relation feature (methods.md §0), shared by the STTran-family contexts:
    subject / object RoI features → Linear → ``proj_dim`` each; the union branch; subject and
    object class embeddings (two tables of ``embed_dim``); all concatenated.

    Union branch: with union *maps* (``union_is_map``: the features stage returns the union
    box's RoIAlign 7×7 map, ``[P, C, 7, 7]``) a 1×1 conv takes them to 256 channels, the
    box-mask net's 256×7×7 map is added, and the sum is flattened → Linear → ``proj_dim``
    (the reference). With union feature *vectors* ``[P, D_u]`` the vector → Linear and the
    flattened mask map → Linear are summed instead.
    """

    def _init_relation_features(
        self,
        class_names: Sequence[str],
        obj_feat_dim: int,
        union_feat_dim: int,
        proj_dim: int,
        embed_dim: int,
        union_is_map: bool,
    ) -> None:
        if not obj_feat_dim or not union_feat_dim:
            raise ValueError(
                f"{type(self).__name__} needs object and union features "
                "(obj_feat_dim, union_feat_dim > 0)"
            )
        self.union_is_map = bool(union_is_map)
        self.sub_proj = nn.Linear(obj_feat_dim, proj_dim)
        self.obj_proj = nn.Linear(obj_feat_dim, proj_dim)
        if self.union_is_map:
            self.union_conv = nn.Conv2d(union_feat_dim, 256, 1)
        else:
            self.union_proj = nn.Linear(union_feat_dim, proj_dim)
        self.mask_net = nn.Sequential(
            nn.Conv2d(2, 128, 7, stride=2, padding=3),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(128),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(128, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(256),
        )
        self.mask_proj = nn.Linear(256 * 7 * 7, proj_dim)
        self.sub_embed = ClassEmbedding(list(class_names), dim=embed_dim)
        self.obj_embed = ClassEmbedding(list(class_names), dim=embed_dim)
        self.num_classes = len(class_names)
        self.relation_dim = 3 * proj_dim + 2 * embed_dim

    def relation_features(self, inp: RelationInputs) -> torch.Tensor:
        """``[P, 3·proj_dim + 2·embed_dim]`` features of the pairs of ``inp``."""
        s, o = inp.pairs[:, 0], inp.pairs[:, 1]
        if inp.obj_feats is None or inp.union_feats is None:
            raise ValueError(f"{type(self).__name__} needs obj_feats and union_feats")
        dists = inp.label_dists
        if dists is None:
            dists = nn.functional.one_hot(inp.labels, self.num_classes).to(inp.boxes.dtype)  # type: ignore[arg-type]
        masks = self.mask_net(box_masks(inp.boxes[s], inp.boxes[o]))
        u = inp.union_feats
        if self.union_is_map:
            if u.dim() != 4 or tuple(u.shape[-2:]) != (7, 7):
                raise ValueError(
                    f"union maps must be [P, C, 7, 7] (a 7×7 RoIAlign), got {tuple(u.shape)}"
                )
            union = self.mask_proj((self.union_conv(u) + masks).flatten(1))
        else:
            if u.dim() != 2:
                raise ValueError(
                    "the features stage returns union maps: build the context with "
                    "union_is_map=true (injected by build_model)"
                )
            union = self.union_proj(u) + self.mask_proj(masks.flatten(1))
        return torch.cat(
            [
                self.sub_proj(inp.obj_feats[s]),
                self.obj_proj(inp.obj_feats[o]),
                union,
                self.sub_embed.soft(dists[s]),
                self.obj_embed.soft(dists[o]),
            ],
            dim=1,
        )


def sinusoidal_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """``[N, dim]`` sine / cosine encoding of integer ``positions`` (sin on even channels, cos
    on odd ones, wavelengths 2π … 10000·2π)."""
    half = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32)
    freq = torch.exp(half * (-math.log(10000.0) / dim))
    angle = positions.to(torch.float32).unsqueeze(1) * freq.unsqueeze(0)
    out = torch.zeros((positions.shape[0], dim), device=positions.device)
    out[:, 0::2] = torch.sin(angle)
    out[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return out


class STTranContext(RelationFeatureMixin, ContextModel):
    """STTran spatial encoder + temporal decoder over the relation features of one video.

    Args:
        class_names: object class names (GloVe-initialised embeddings).
        obj_feat_dim: RoI feature size (required; STTran reads pixels).
        union_feat_dim: union-box feature size.
        proj_dim: projection of subject / object / union features (reference: 512).
        embed_dim: class-embedding size per table (reference 200 with GloVe 200d; GloVe 50d is
            projected to it).
        num_heads, ff_dim, dropout: transformer settings (8, 2048, 0.1).
        temporal_layers: decoder depth (3).
        frame_embed_on: ``qk`` (queries and keys, STTran) or ``inputs``.
        memory: options of :class:`RelationMemory` (``compute``, ``selection``, ``lam``,
            ``fusion``, ``use_memory_at_test``, ``weight_type``) to add TEMPURA's memory bank, or
            ``None``.
        num_predicates, groups: injected from the vocabulary (for the memory).
        union_is_map: the features stage returns union 7×7 maps (injected by
            :func:`tailgraph.modeling.builder.build_model` from the features stage).
        predicate_counts: training counts (injected; the memory's ``frequency`` weighting).

    Shapes:
        ``forward(RelationInputs) -> ContextOutput(pair_feats [P, 3·proj_dim + 2·embed_dim])``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        obj_feat_dim: int,
        union_feat_dim: int,
        proj_dim: int = 512,
        embed_dim: int = 200,
        num_heads: int = 8,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        temporal_layers: int = 3,
        frame_embed_on: str = "qk",
        memory: dict | None = None,
        num_predicates: int | None = None,
        groups: Sequence[Sequence] | None = None,
        union_is_map: bool = False,
        predicate_counts: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if frame_embed_on not in ("qk", "inputs"):
            raise ValueError(f"frame_embed_on must be 'qk' or 'inputs', got {frame_embed_on!r}")
        self.frame_embed_on = frame_embed_on
        self._init_relation_features(
            class_names, obj_feat_dim, union_feat_dim, proj_dim, embed_dim, union_is_map
        )
        d = 3 * proj_dim + 2 * embed_dim
        if d % num_heads:
            raise ValueError(f"model width {d} must be divisible by num_heads {num_heads}")
        self.spatial = nn.TransformerEncoderLayer(
            d, num_heads, ff_dim, dropout, batch_first=True
        )  # post-norm
        if frame_embed_on == "qk":
            self.temporal_layers = nn.ModuleList(
                PositionalDecoderLayer(d, num_heads, ff_dim, dropout)
                for _ in range(temporal_layers)
            )
        else:
            layer = nn.TransformerEncoderLayer(d, num_heads, ff_dim, dropout, batch_first=True)
            self.temporal = nn.TransformerEncoder(
                layer, temporal_layers, enable_nested_tensor=False
            )
        self.frame_embed = nn.Embedding(2, d)
        self.memory = None
        if memory is not None:
            from tailgraph.modeling.memory import RelationMemory

            if num_predicates is None:
                raise ValueError(
                    "the memory bank needs num_predicates (injected from the vocabulary)"
                )
            opts = {"predicate_counts": predicate_counts, **dict(memory)}
            self.memory = RelationMemory(d, num_predicates, groups, **opts)
        self.out_dim = self.hidden_dim = d

    def _decode(
        self, seq: torch.Tensor, rel_frame: torch.Tensor, pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The temporal decoder over windows of pairs: ``seq`` ``[W, L, D]`` (or one window
        ``[L, D]``), ``rel_frame`` 0 / 1 = the pair's frame in its window, ``pad`` ``[W, L]``
        marks padding."""
        one = seq.dim() == 2
        if one:
            seq, rel_frame = seq.unsqueeze(0), rel_frame.unsqueeze(0)
        pos = self.frame_embed(rel_frame.long())
        if self.frame_embed_on == "qk":
            x = seq
            for layer in self.temporal_layers:
                x = layer(x, pos, key_padding_mask=pad)
        else:
            x = self.temporal(seq + pos, src_key_padding_mask=pad)
        return x.squeeze(0) if one else x

    def _decode_windows(self, spatial: torch.Tensor, frame: torch.Tensor, nf: int) -> torch.Tensor:
        """All sliding windows ``(w, w + 1)`` decoded as one padded batch; each frame's pairs
        take the output of the window in which it is the later frame (frame 0: window 0)."""
        counts = torch.bincount(frame, minlength=nf)
        order = torch.argsort(frame, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        lengths = counts[:-1] + counts[1:]  # window w: frames w and w + 1, contiguous in order
        keep = torch.nonzero(lengths > 0).flatten()
        lengths, first = lengths[keep], starts[:-1][keep]
        width = int(lengths.max())
        slot = torch.arange(width, device=frame.device)
        valid = slot.unsqueeze(0) < lengths.unsqueeze(1)  # [W, L]
        rows = order[(first.unsqueeze(1) + slot.unsqueeze(0)).clamp(max=frame.numel() - 1)]
        rel = (frame[rows] - keep.unsqueeze(1)).clamp(0, 1)
        seq = torch.where(valid.unsqueeze(-1), spatial[rows], spatial.new_zeros(()))
        res = self._decode(seq, rel, ~valid)
        take = valid & ((rel == 1) | (keep.unsqueeze(1) == 0))
        out = torch.empty_like(spatial)
        out[rows[take]] = res[take]
        return out

    def forward(self, inp: RelationInputs) -> ContextOutput:
        x = self.relation_features(inp)
        frame = inp.obj_to_img[inp.pairs[:, 0]]
        nf = inp.num_images
        padded, valid, pos = pad_by_image(x, frame, nf)
        spatial = unpad(self.spatial(padded, src_key_padding_mask=~valid), frame, pos)
        writes = []
        mem = self.memory
        if mem is not None and mem.fusion == "early":
            writes.append((mem, spatial.detach()))
            spatial = mem(spatial)
        if nf == 1:
            out = self._decode(spatial, torch.zeros_like(frame))
        elif frame.numel() == 0:
            out = spatial
        else:
            out = self._decode_windows(spatial, frame, nf)
        if mem is not None and mem.fusion == "late":
            writes.append((mem, out.detach()))
            out = mem(out)
        return ContextOutput(pair_feats=out, memory_writes=writes)
