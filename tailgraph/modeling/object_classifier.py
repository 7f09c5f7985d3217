"""SGCls object classifier on RoI features (for context models that do not classify objects)."""

from __future__ import annotations

import torch
from torch import nn

from tailgraph.modeling.types import ContextObjectClassifier, ObjectOutput, RelationInputs

__all__ = ["ObjectClassifier"]


class ObjectClassifier(nn.Module):
    """MLP from visual RoI features to object-class logits (background included).

    Used by :class:`tailgraph.modeling.relation_model.RelationModel` in SGCls when the context
    model has no object decoder of its own (the pairwise MLP); in PredCls it is not called.

    Args:
        in_dim: RoI feature size.
        num_classes: ``C`` including background.
        hidden_dim: hidden width (0 = a single linear layer).

    Shapes:
        ``forward(obj_feats [N, in_dim]) -> logits [N, C]``.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.net: nn.Module
        if hidden_dim:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden_dim),
                nn.ReLU(inplace=True),
                nn.Linear(hidden_dim, num_classes),
            )
        else:
            self.net = nn.Linear(in_dim, num_classes)

    def forward(self, obj_feats: torch.Tensor) -> torch.Tensor:
        return self.net(obj_feats)


class TempuraObjectClassifier(ContextObjectClassifier):
    """TEMPURA's object classifier for SGCls (methods.md §0).

    Object feature: the RoI feature, the class embedding weighted by a label distribution (the
    detector's when the inputs carry one; otherwise a linear pre-classifier's, trained by its own
    cross-entropy, ``ObjectOutput.pre_logits``) and a 128-d box embedding (BN → Linear → ReLU →
    Dropout of the normalised centre / size), concatenated. With ``tracking`` the boxes of one
    video are grouped by their argmax label into sequences and a transformer encoder (3 layers,
    sinusoidal position = frame index) runs over each sequence. Then Linear → BN → ReLU
    (``hidden_dim``) and the head: ``linear`` logits, or ``gmm`` — TEMPURA's GMM head with a
    softmax, whose logits are the log of its mixture probabilities (so the object
    cross-entropy is TEMPURA's NLL on ``log p``).

    The (tracked) object features are returned in ``ObjectOutput.features`` for the
    ``euc_con`` contrastive loss (:func:`tailgraph.losses.euclidean_contrastive_loss`).

    Args:
        in_dim: RoI feature size (injected).
        num_classes: classes including background (injected).
        class_names: for the GloVe-initialised embedding (injected).
        embed_dim, box_dim, hidden_dim: sizes (200, 128, 1024 in the reference).
        head: ``linear`` | ``gmm``; num_components: the GMM's K.
        tracking: run the tracking encoder; tracking_layers, tracking_heads, tracking_ff,
            dropout: its settings (3, 8, 1024, 0.1).

    Shapes:
        ``forward(obj_feats [N, in_dim], inputs) -> (logits [N, C], extras)``.
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        class_names: list[str],
        embed_dim: int = 200,
        box_dim: int = 128,
        hidden_dim: int = 1024,
        head: str = "linear",
        num_components: int = 4,
        tracking: bool = False,
        tracking_layers: int = 3,
        tracking_heads: int = 8,
        tracking_ff: int = 1024,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        from tailgraph.modeling.embeddings import ClassEmbedding
        from tailgraph.modeling.heads.gmm import GMMHead

        if head not in ("linear", "gmm"):
            raise ValueError(f"head must be 'linear' or 'gmm', got {head!r}")
        self.num_classes = num_classes
        self.pre = nn.Linear(in_dim, num_classes)
        self.embed = ClassEmbedding(list(class_names), dim=embed_dim)
        self.box = nn.Sequential(
            nn.BatchNorm1d(4), nn.Linear(4, box_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )
        d = in_dim + embed_dim + box_dim
        self.tracking = tracking
        if tracking:
            if d % tracking_heads:
                raise ValueError(
                    f"tracking: object feature width {d} must be divisible by "
                    f"tracking_heads {tracking_heads}"
                )
            layer = nn.TransformerEncoderLayer(
                d, tracking_heads, tracking_ff, dropout, batch_first=True
            )
            self.tracker = nn.TransformerEncoder(layer, tracking_layers, enable_nested_tensor=False)
        self.feat_dim = d
        self.intermediate = nn.Sequential(
            nn.Linear(d, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)
        )
        self.head_kind = head
        self.head = (
            GMMHead(hidden_dim, num_classes, num_components, act="softmax")
            if head == "gmm"
            else nn.Linear(hidden_dim, num_classes)
        )

    def track(self, feats: torch.Tensor, labels: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """The tracking encoder over the sequences of same-label boxes (frame-index positions)."""
        from tailgraph.modeling.context.common import pad_by_image, unpad
        from tailgraph.modeling.context.sttran import sinusoidal_encoding

        seq = torch.unique(labels, return_inverse=True)[1]
        order = torch.argsort(frame * (seq.max() + 1) + seq, stable=True)  # by frame in a sequence
        inv = torch.empty_like(order)
        inv[order] = torch.arange(order.numel(), device=order.device)
        x = feats[order] + sinusoidal_encoding(frame[order], feats.shape[1]).to(feats.dtype)
        padded, valid, pos = pad_by_image(x, seq[order], int(seq.max()) + 1)
        out = unpad(self.tracker(padded, src_key_padding_mask=~valid), seq[order], pos)
        return out[inv]

    def forward(self, obj_feats: torch.Tensor, inputs: RelationInputs) -> ObjectOutput:
        pre = None
        dists = inputs.label_dists
        if dists is None:
            pre = self.pre(obj_feats)
            dists = torch.softmax(pre, dim=-1)
        b = inputs.boxes
        size = inputs.image_sizes[inputs.obj_to_img].to(b.dtype).clamp_min(1)  # [N, 2] (h, w)
        wh = (b[:, 2:] - b[:, :2]) / size.flip(1)
        centre = (b[:, :2] + b[:, 2:]) / 2 / size.flip(1)
        f = torch.cat([obj_feats, self.embed.soft(dists), self.box(torch.cat([centre, wh], 1))], 1)
        if self.tracking and f.shape[0]:
            labels = dists[:, 1:].argmax(1) + 1 if dists.shape[1] > 1 else dists.argmax(1)
            f = self.track(f, labels, inputs.obj_to_img)
        h = self.intermediate(f)
        logits = self.head(h).logits if self.head_kind == "gmm" else self.head(h)
        return ObjectOutput(logits, features=f, pre_logits=pre)
