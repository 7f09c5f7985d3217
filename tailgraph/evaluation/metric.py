"""torchmetrics wrappers: the evaluators' per-image statistics synchronised across processes.

Each process evaluates its own images (pure numpy, :mod:`tailgraph.evaluation.vg`) and keeps
fixed-width rows of per-image statistics; under DDP the rows are concatenated across
processes (``dist_reduce_fx="cat"``) and the metric is computed from all of them, so the
numbers equal a single-process evaluation of the whole set.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from tailgraph.evaluation.vg import VGEvaluator, aggregate_rows

__all__ = ["VGRecallMetric", "AGRecallMetric"]


class VGRecallMetric(Metric):
    """R@K, mR@K, ngR@K, zR@K, A@K of the VG protocol as a DDP-aware ``Metric``.

    Args:
        mode: ``predcls`` | ``sgcls`` | ``sgdet``.
        ks: K values.
        num_predicates: predicate columns incl. background.
        zeroshot_triplets: optional ``(subject_class, object_class, predicate)`` rows.
        iou_thresh: box IoU threshold.

    ``update(gts, preds)`` takes lists of :class:`SceneGraph` / :class:`Predictions` (or the
    equivalent dicts); ``compute()`` returns the flat metric dict.
    """

    full_state_update = False

    def __init__(self, mode: str = "predcls", ks: Sequence[int] = (20, 50, 100), num_predicates: int = 51,
                 zeroshot_triplets: Sequence[Sequence[int]] | None = None, iou_thresh: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.ks = tuple(int(k) for k in ks)
        self.num_predicates = num_predicates
        self.zeroshot_triplets = zeroshot_triplets
        self.iou_thresh = iou_thresh
        self.add_state("image_rows", default=[], dist_reduce_fx="cat")
        self.add_state("predicate_rows", default=[], dist_reduce_fx="cat")

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:  # type: ignore[override]
        ev = VGEvaluator(self.mode, self.ks, self.zeroshot_triplets, self.iou_thresh, self.num_predicates)
        ev.update(gts, preds)
        img, pr = ev.rows()
        self.image_rows.append(torch.from_numpy(img).to(self.device))
        self.predicate_rows.append(torch.from_numpy(pr).to(self.device))

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        nk = len(self.ks)

        def cat(state: Any, width: int) -> np.ndarray:
            if isinstance(state, list) and not state:
                return np.zeros((0, width))
            return dim_zero_cat(state).reshape(-1, width).double().cpu().numpy()

        img = cat(self.image_rows, 2 + 5 * nk)
        pr = cat(self.predicate_rows, 2 + 2 * nk)
        return aggregate_rows(img, pr, self.num_predicates, self.ks, zeroshot=self.zeroshot_triplets is not None)


class AGRecallMetric(Metric):
    """Action Genome R@K / mR@K for one constraint as a DDP-aware ``Metric``.

    State: per-frame recalls (concatenated across processes) and per-predicate hit / GT
    counts (summed), which is all the AG protocol needs.

    Args:
        constraint, mode, ks, semi_threshold, iou_thresh, attention_softmax: as
            :class:`tailgraph.evaluation.ag.AGEvaluator`.
    """

    full_state_update = False

    def __init__(self, constraint: str = "with", mode: str = "predcls", ks: Sequence[int] = (10, 20, 50),
                 semi_threshold: float = 0.9, iou_thresh: float = 0.5, attention_softmax: bool = False, **kwargs: Any) -> None:
        from tailgraph.evaluation.ag import AG_NUM_PREDICATES

        super().__init__(**kwargs)
        self.options = dict(constraint=constraint, mode=mode, ks=tuple(int(k) for k in ks), semi_threshold=semi_threshold,
                            iou_thresh=iou_thresh, attention_softmax=attention_softmax)
        nk = len(self.options["ks"])
        self.add_state("frame_recalls", default=[], dist_reduce_fx="cat")
        self.add_state("hits", default=torch.zeros(nk, AG_NUM_PREDICATES, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(AG_NUM_PREDICATES, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:  # type: ignore[override]
        from tailgraph.evaluation.ag import AGEvaluator

        ev = AGEvaluator(**self.options)
        ev.update(gts, preds)
        ks = self.options["ks"]
        self.frame_recalls.append(torch.tensor(np.stack([ev.recalls[k] for k in ks], axis=1), dtype=torch.float64, device=self.device))
        self.hits += torch.tensor(np.stack([ev.hits[k] for k in ks]), dtype=torch.float64, device=self.device)
        self.counts += torch.tensor(ev.counts, dtype=torch.float64, device=self.device)

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        ks = self.options["ks"]
        rec = (dim_zero_cat(self.frame_recalls).reshape(-1, len(ks)).cpu().numpy()
               if not (isinstance(self.frame_recalls, list) and not self.frame_recalls) else np.zeros((0, len(ks))))
        hits, counts = self.hits.cpu().numpy(), self.counts.cpu().numpy()
        out: dict[str, Any] = {}
        for j, k in enumerate(ks):
            out[f"R@{k}"] = float(rec[:, j].mean()) if rec.shape[0] else 0.0
            per = hits[j] / (counts + 1e-10)
            out[f"mR@{k}"] = float(per.mean())
            out[f"per_predicate_R@{k}"] = per.tolist()
        out["num_frames"] = int(rec.shape[0])
        return out
