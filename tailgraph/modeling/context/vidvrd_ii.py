"""VidVRD-II-style tracklet-pair model (methods.md §3, the DLL paper's base model).

Per video segment: each tracklet's visual feature is the mean of its per-frame RoI features;
each (subject, object) tracklet pair gets a 12-d relative-position feature (6 values at the
segment's start and 6 at its end, :func:`relative_motion_feature`). Predicate branch:
``MLP(concat(subject, object)) → hidden`` (dropout) concatenated with the position feature →
``Linear(hidden) + ReLU`` (the pair's video feature ``f_v``) → ``Linear(P, no bias)`` (or any
head module, e.g. DLL's pattern-decoupled head); object head: ``MLP → O + 1`` per tracklet.
Zero-initialised preference tables (``so2p``, ``sp2o``, ``po2s``) refine the three
distributions over ``steps`` iterations at inference; the triplet score is ``s · p · o``.
"""

from __future__ import annotations

import torch
from torch import nn

from tailgraph.modeling.types import HeadOutput
from tailgraph.ops.tracks import relative_motion_feature

__all__ = ["relative_motion_feature", "TrackletPairModel"]


class TrackletPairModel(nn.Module):
    """Tracklet-pair relation model with iterative preference refinement.

    Args:
        feat_dim: per-frame RoI feature size.
        num_classes: object classes ``O + 1`` (background included).
        num_predicates: predicates ``P`` (multi-label, sigmoid).
        hidden_dim: width (reference 768).
        dropout: predicate-branch dropout (0.2).
        steps: iterative inference steps (3).
        head: predicate classifier on ``f_v`` (default ``Linear(hidden, P, bias=False)``); may
            return a dict with ``logits``.

    Shapes:
        ``forward(track_feats [T, F], pairs [Q, 2], position [Q, 12]) -> dict`` with
        ``predicate`` (:class:`HeadOutput`, the head's logits ``[Q, P]``), ``object_logits``
        ``[T, O+1]``, ``pair_feats`` ``[Q, hidden]``, ``head`` (the head's dict output, if any),
        ``refined_logits`` ``[Q, P]`` (head logits + the subject-object preference) and,
        after refinement, ``sub_probs`` / ``obj_probs`` ``[Q, O+1]``, ``pred_probs`` ``[Q, P]``.
        ``triplet_scores(out, k)`` gives the top-k ``(s, p, o)`` triplets per pair with ``s·p·o``.
    """

    def __init__(
        self,
        feat_dim: int,
        num_classes: int,
        num_predicates: int,
        hidden_dim: int = 768,
        dropout: float = 0.2,
        steps: int = 3,
        head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.pair_mlp = nn.Sequential(
            nn.Linear(2 * feat_dim, hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )
        self.pair_fc = nn.Sequential(nn.Linear(hidden_dim + 12, hidden_dim), nn.ReLU(inplace=True))
        # the predicate classifier on f_v; DLL swaps in its pattern-decoupled head
        self.head = head if head is not None else nn.Linear(hidden_dim, num_predicates, bias=False)
        self.obj = nn.Sequential(
            nn.Linear(feat_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, num_classes),
        )
        o, p = num_classes, num_predicates
        self.so2p = nn.Parameter(torch.zeros(o, o, p))
        self.sp2o = nn.Parameter(torch.zeros(o, p, o))
        self.po2s = nn.Parameter(torch.zeros(p, o, o))
        self.steps = steps

    def pair_features(
        self, track_feats: torch.Tensor, pairs: torch.Tensor, position: torch.Tensor
    ) -> torch.Tensor:
        """``f_v [Q, hidden]``: the video feature of each pair (what the predicate head reads)."""
        s, o = pairs[:, 0], pairs[:, 1]
        return self.pair_fc(
            torch.cat([self.pair_mlp(torch.cat([track_feats[s], track_feats[o]], 1)), position], 1)
        )

    def forward(
        self, track_feats: torch.Tensor, pairs: torch.Tensor, position: torch.Tensor
    ) -> dict:
        s, o = pairs[:, 0], pairs[:, 1]
        obj_logits = self.obj(track_feats)
        f_v = self.pair_features(track_feats, pairs, position)
        head_out = self.head(f_v)
        extras = {}
        if isinstance(head_out, dict):
            extras = head_out
            pred_logits = head_out["logits"]
        else:
            pred_logits = head_out
        # iterative inference: each distribution gets the expected preference given the others
        sl, ol, pl = obj_logits[s], obj_logits[o], pred_logits
        sp, op = torch.softmax(sl, 1), torch.softmax(ol, 1)
        refined = pl
        pp = torch.sigmoid(pl)
        for _ in range(self.steps):
            refined = pl + torch.einsum("qa,qb,abp->qp", sp, op, self.so2p)
            pp = torch.sigmoid(refined)
            op = torch.softmax(ol + torch.einsum("qa,qp,apb->qb", sp, pp, self.sp2o), 1)
            sp = torch.softmax(sl + torch.einsum("qp,qb,pba->qa", pp, op, self.po2s), 1)
        return {
            "predicate": HeadOutput(logits=pred_logits, probs=torch.sigmoid(pred_logits)),
            "object_logits": obj_logits,
            "pair_feats": f_v,
            "refined_logits": refined,
            "head": extras,
            "sub_probs": sp,
            "obj_probs": op,
            "pred_probs": pp,
        }

    @staticmethod
    def triplet_scores(out: dict, k: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` triplets per pair: ``(indices [Q, k, 3] (s, p, o), scores [Q, k])``; the
        background class is excluded for subject and object."""
        sp, op, pp = out["sub_probs"][:, 1:], out["obj_probs"][:, 1:], out["pred_probs"]
        joint = sp[:, :, None, None] * pp[:, None, :, None] * op[:, None, None, :]  # [Q, S, P, O]
        q = joint.shape[0]
        flat = joint.reshape(q, -1)
        k = min(k, flat.shape[1])
        scores, idx = flat.topk(k, dim=1)
        ns, np_, no = joint.shape[1:]
        s_idx = idx // (np_ * no) + 1
        p_idx = (idx // no) % np_
        o_idx = idx % no + 1
        return torch.stack([s_idx, p_idx, o_idx], dim=-1), scores
