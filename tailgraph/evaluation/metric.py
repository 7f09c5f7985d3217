"""torchmetrics wrappers: the evaluators' per-image statistics synchronised across processes.

Each process evaluates its own images (pure numpy, :mod:`tailgraph.evaluation.vg`) and keeps
fixed-width rows of per-image statistics; under DDP the rows are concatenated across
processes (``dist_reduce_fx="cat"``) and the metric is computed from all of them, so the
numbers equal a single-process evaluation of the whole set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from tailgraph.evaluation.vg import VGEvaluator, aggregate_rows, predicate_confusion

__all__ = [
    "EvalMetric",
    "VGRecallMetric",
    "AGRecallMetric",
    "AGMetric",
    "VidVRDMetric",
    "OIMetric",
]


def prime_states(metric: Metric, widths: dict[str, int], dtype=None) -> None:
    """Give every list state one empty ``[0, width]`` tensor. Under DDP a process whose shard
    holds no image would otherwise keep an empty list, skip the state's all-gather that the
    others enter, and hang them; the empty rows change no result."""
    for name, width in widths.items():
        state = getattr(metric, name)
        if isinstance(state, list):
            kw = {"dtype": dtype} if dtype is not None else {}
            state.append(torch.zeros((0, width), device=metric.device, **kw))


class EvalMetric(Metric):
    """Base of tailgraph's evaluation metrics: a torchmetrics ``Metric`` (its states reduced
    across DDP processes at ``compute``) with :meth:`prime`, which the engine calls after
    ``reset`` so a process whose shard holds no image still joins every gather."""

    def prime(self) -> None:
        """Give empty list states one empty, correctly shaped row (default: nothing to do)."""
        return None


class VGRecallMetric(EvalMetric):
    """R@K, mR@K, ngR@K, zR@K, A@K of the VG protocol as a DDP-aware ``Metric``.

    Args:
        mode: ``predcls`` | ``sgcls`` | ``sgdet``.
        ks: K values.
        num_predicates: predicate columns incl. background.
        zeroshot_triplets: optional ``(subject_class, object_class, predicate)`` rows.
        iou_thresh: box IoU threshold.

    ``update(gts, preds)`` takes lists of :class:`SceneGraph` / :class:`Predictions` (or the
    equivalent dicts); ``compute()`` returns the flat metric dict, in PredCls / SGCls with
    ``predicate_confusion`` (:func:`tailgraph.evaluation.vg.predicate_confusion`, summed over
    processes) for the report's coarse / fine confusion.
    """

    confusion: torch.Tensor
    image_rows: list[torch.Tensor]
    predicate_rows: list[torch.Tensor]

    full_state_update = False

    def __init__(
        self,
        mode: str = "predcls",
        ks: Sequence[int] = (20, 50, 100),
        num_predicates: int = 51,
        zeroshot_triplets: Sequence[Sequence[int]] | None = None,
        iou_thresh: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.ks = tuple(int(k) for k in ks)
        self.num_predicates = num_predicates
        self.zeroshot_triplets = zeroshot_triplets
        self.iou_thresh = iou_thresh
        self.add_state("image_rows", default=[], dist_reduce_fx="cat")
        self.add_state("predicate_rows", default=[], dist_reduce_fx="cat")
        # PredCls / SGCls: the GT relations' top-1 predicate confusion (pairs name GT boxes)
        self.with_confusion = mode in ("predcls", "sgcls")
        if self.with_confusion:
            self.add_state(
                "confusion",
                default=torch.zeros(num_predicates, num_predicates, dtype=torch.float64),
                dist_reduce_fx="sum",
            )

    def prime(self) -> None:
        """Append empty, correctly shaped rows (see :func:`prime_states`)."""
        nk = len(self.ks)
        prime_states(self, {"image_rows": 2 + 5 * nk, "predicate_rows": 2 + 2 * nk}, torch.float64)

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:
        ev = VGEvaluator(
            self.mode, self.ks, self.zeroshot_triplets, self.iou_thresh, self.num_predicates
        )
        ev.update(gts, preds)
        img, pr = ev.rows()
        self.image_rows.append(torch.from_numpy(img).to(self.device))
        self.predicate_rows.append(torch.from_numpy(pr).to(self.device))
        if self.with_confusion:
            conf = predicate_confusion(gts, preds, self.num_predicates)
            self.confusion += torch.from_numpy(conf).to(self.confusion)

    def compute(self) -> dict[str, Any]:
        nk = len(self.ks)

        def cat(state: Any, width: int) -> np.ndarray:
            if isinstance(state, list) and not state:
                return np.zeros((0, width))
            return dim_zero_cat(state).reshape(-1, width).double().cpu().numpy()

        img = cat(self.image_rows, 2 + 5 * nk)
        pr = cat(self.predicate_rows, 2 + 2 * nk)
        out = aggregate_rows(
            img, pr, self.num_predicates, self.ks, zeroshot=self.zeroshot_triplets is not None
        )
        if self.with_confusion:
            # rows: GT predicate; columns: top-1 foreground prediction (0: pair not scored)
            out["predicate_confusion"] = self.confusion.round().long().cpu().tolist()
        return out


class AGRecallMetric(EvalMetric):
    """Action Genome R@K / mR@K for one constraint as a DDP-aware ``Metric``.

    State: per-frame recalls (concatenated across processes) and per-predicate hit / GT
    counts (summed), which is all the AG protocol needs.

    Args:
        constraint, mode, ks, semi_threshold, iou_thresh, attention_softmax: as
            :class:`tailgraph.evaluation.ag.AGEvaluator`.
    """

    counts: torch.Tensor
    frame_recalls: list[torch.Tensor]
    hits: torch.Tensor

    full_state_update = False

    def __init__(
        self,
        constraint: str = "with",
        mode: str = "predcls",
        ks: Sequence[int] = (10, 20, 50),
        semi_threshold: float = 0.9,
        iou_thresh: float = 0.5,
        attention_softmax: bool = False,
        **kwargs: Any,
    ) -> None:
        from tailgraph.evaluation.ag import AG_NUM_PREDICATES

        super().__init__(**kwargs)
        self.options: dict[str, Any] = dict(
            constraint=constraint,
            mode=mode,
            ks=tuple(int(k) for k in ks),
            semi_threshold=semi_threshold,
            iou_thresh=iou_thresh,
            attention_softmax=attention_softmax,
        )
        nk = len(self.options["ks"])
        self.add_state("frame_recalls", default=[], dist_reduce_fx="cat")
        self.add_state(
            "hits",
            default=torch.zeros(nk, AG_NUM_PREDICATES, dtype=torch.float64),
            dist_reduce_fx="sum",
        )
        self.add_state(
            "counts",
            default=torch.zeros(AG_NUM_PREDICATES, dtype=torch.float64),
            dist_reduce_fx="sum",
        )

    def prime(self) -> None:
        """Append empty, correctly shaped rows (see :func:`prime_states`)."""
        prime_states(self, {"frame_recalls": len(self.options["ks"])}, torch.float64)

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:
        from tailgraph.evaluation.ag import AGEvaluator

        ev = AGEvaluator(**self.options)
        ev.update(gts, preds)
        ks = self.options["ks"]
        self.frame_recalls.append(
            torch.tensor(
                np.stack([ev.recalls[k] for k in ks], axis=1),
                dtype=torch.float64,
                device=self.device,
            )
        )
        self.hits += torch.tensor(
            np.stack([ev.hits[k] for k in ks]), dtype=torch.float64, device=self.device
        )
        self.counts += torch.tensor(ev.counts, dtype=torch.float64, device=self.device)

    def compute(self) -> dict[str, Any]:
        ks = self.options["ks"]
        rec = (
            dim_zero_cat(self.frame_recalls).reshape(-1, len(ks)).cpu().numpy()
            if not (isinstance(self.frame_recalls, list) and not self.frame_recalls)
            else np.zeros((0, len(ks)))
        )
        hits, counts = self.hits.cpu().numpy(), self.counts.cpu().numpy()
        out: dict[str, Any] = {}
        for j, k in enumerate(ks):
            out[f"R@{k}"] = float(rec[:, j].mean()) if rec.shape[0] else 0.0
            per = hits[j] / (counts + 1e-10)
            out[f"mR@{k}"] = float(per.mean())
            out[f"per_predicate_R@{k}"] = per.tolist()
        out["num_frames"] = int(rec.shape[0])
        return out


class AGMetric(EvalMetric):
    """The three Action Genome constraints as one ``Metric``: an :class:`AGRecallMetric` per
    constraint (each reduced across processes), results nested under ``with`` / ``semi`` /
    ``no`` as ``tailgraph evaluate`` writes them, plus ``num_frames``.

    Args:
        mode, ks, semi_threshold: as :class:`AGRecallMetric`.
    """

    full_state_update = False
    constraints = ("with", "semi", "no")

    def __init__(
        self,
        mode: str = "predcls",
        ks: Sequence[int] = (10, 20, 50),
        semi_threshold: float = 0.9,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # a ModuleDict, so .to(device) and reset reach the per-constraint metrics
        self.per_constraint = torch.nn.ModuleDict(
            {
                c: AGRecallMetric(c, mode, ks, semi_threshold=semi_threshold)
                for c in self.constraints
            }
        )

    def prime(self) -> None:
        for m in self.per_constraint.values():
            m.prime()  # type: ignore[operator]

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:
        for m in self.per_constraint.values():
            m.update(gts, preds)  # type: ignore[operator]

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {c: m.compute() for c, m in self.per_constraint.items()}  # type: ignore[operator]
        out["num_frames"] = out["with"]["num_frames"]
        return out

    def reset(self) -> None:
        super().reset()
        for m in self.per_constraint.values():
            m.reset()  # type: ignore[operator]


class VidVRDMetric(EvalMetric):
    """VidVRD relation detection / tagging metrics as a DDP-aware ``Metric``.

    Per-video statistics are kept as tensors (AP, GT count, TPs at N, tagging precision at
    N, per-predicate hits at N and GT counts) and gathered across processes.

    Args:
        predicates: the predicate vocabulary (names as in the triplets); mR averages over it.
        viou_threshold, det_nreturns, tag_nreturns: as :func:`evaluate_vidvrd`.

    ``update(groundtruth: {video: [...]}, prediction: {video: [...]})``.
    """

    counts: torch.Tensor
    hits: torch.Tensor
    video_rows: list[torch.Tensor]

    full_state_update = False

    def __init__(
        self,
        predicates: Sequence[Any],
        viou_threshold: float = 0.5,
        det_nreturns: Sequence[int] = (50, 100),
        tag_nreturns: Sequence[int] = (1, 5, 10),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predicates = list(predicates)
        self.index = {p: i for i, p in enumerate(self.predicates)}
        self.viou_threshold = viou_threshold
        self.det_n = tuple(int(n) for n in det_nreturns)
        self.tag_n = tuple(int(n) for n in tag_nreturns)
        self.add_state(
            "video_rows", default=[], dist_reduce_fx="cat"
        )  # [V, 2 + len(det) + len(tag)]
        self.add_state(
            "hits",
            default=torch.zeros(len(self.det_n), len(self.predicates), dtype=torch.float64),
            dist_reduce_fx="sum",
        )
        self.add_state(
            "counts",
            default=torch.zeros(len(self.predicates), dtype=torch.float64),
            dist_reduce_fx="sum",
        )

    def prime(self) -> None:
        """Append empty, correctly shaped rows (see :func:`prime_states`)."""
        prime_states(self, {"video_rows": 2 + len(self.det_n) + len(self.tag_n)}, torch.float64)

    def update(self, groundtruth: dict, prediction: dict) -> None:
        from tailgraph.errors import DataError
        from tailgraph.evaluation.vidvrd import video_stats

        rows = []
        for vid, gt in groundtruth.items():
            if not gt:
                continue
            st = video_stats(
                gt, prediction.get(vid, []), vid, self.viou_threshold, self.det_n, self.tag_n
            )
            rows.append(
                [st.ap, st.gt_count]
                + [st.tp_at[n] for n in self.det_n]
                + [st.tag_precision_at[n] for n in self.tag_n]
            )
            for p, c in st.predicate_counts.items():
                if p not in self.index:
                    raise DataError(
                        f"predicate {p!r} is not in the metric's vocabulary",
                        sample=vid,
                        field="triplet",
                    )
                self.counts[self.index[p]] += c
            for j, n in enumerate(self.det_n):
                for p, h in st.predicate_hits_at[n].items():
                    self.hits[j, self.index[p]] += h
        width = 2 + len(self.det_n) + len(self.tag_n)
        self.video_rows.append(
            torch.tensor(rows, dtype=torch.float64, device=self.device).reshape(-1, width)
        )

    def compute(self) -> dict[str, Any]:
        from tailgraph.evaluation.vidvrd import EPS32

        width = 2 + len(self.det_n) + len(self.tag_n)
        rows = (
            dim_zero_cat(self.video_rows).reshape(-1, width).cpu().numpy()
            if not (isinstance(self.video_rows, list) and not self.video_rows)
            else np.zeros((0, width))
        )
        tot_gt = rows[:, 1].sum()
        out: dict[str, Any] = {"RelDet_mAP": float(rows[:, 0].mean()) if rows.shape[0] else 0.0}
        for j, n in enumerate(self.det_n):
            out[f"RelDet_R@{n}"] = float(
                np.float32(rows[:, 2 + j].sum()) / np.maximum(np.float32(tot_gt), EPS32)
            )
        for j, n in enumerate(self.tag_n):
            out[f"RelTag_P@{n}"] = (
                float(rows[:, 2 + len(self.det_n) + j].mean()) if rows.shape[0] else 0.0
            )
        counts = self.counts.cpu().numpy()
        for j, n in enumerate(self.det_n):
            per = np.where(counts > 0, self.hits[j].cpu().numpy() / np.maximum(counts, 1), 0.0)
            out[f"mR@{n}"] = float(per.mean()) if per.size else 0.0
            out[f"per_predicate_R@{n}"] = {str(p): float(v) for p, v in zip(self.predicates, per)}
        if 50 in self.det_n and 100 in self.det_n:
            out["Mean"] = (
                out["mR@50"] + out["mR@100"] + out["RelDet_R@50"] + out["RelDet_R@100"]
            ) / 4
        out["num_videos"] = int(rows.shape[0])
        return out


class OIMetric(EvalMetric):
    """Open Images exhaustive-pair AP metrics as a DDP-aware ``Metric``: candidate-pair scores
    and labels are concatenated across processes, then :func:`evaluate_oi`'s AP computation
    runs on all of them.

    Args:
        predicates: predicate names in column order (incl. background when ``background``).
        ignore: names left out of the starred means.
    """

    labels: list[torch.Tensor]
    missed: torch.Tensor
    scores: list[torch.Tensor]

    full_state_update = False

    def __init__(
        self,
        predicates: Sequence[str],
        ignore: Sequence[str] = ("under",),
        background: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predicates, self.ignore, self.background = list(predicates), tuple(ignore), background
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state(
            "missed",
            default=torch.zeros(len(self.predicates), dtype=torch.float64),
            dist_reduce_fx="sum",
        )

    def prime(self) -> None:
        """Append empty, correctly shaped rows (see :func:`prime_states`)."""
        nr = len(self.predicates)
        prime_states(self, {"scores": nr, "labels": nr}, torch.float64)

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:
        from tailgraph.evaluation.openimages import collect_pairs

        scores, labels, missed = collect_pairs(gts, preds, len(self.predicates), self.background)
        self.scores.append(torch.from_numpy(scores).to(self.device, torch.float64))
        self.labels.append(torch.from_numpy(labels.astype(np.float64)).to(self.device))
        self.missed += torch.from_numpy(missed.astype(np.float64)).to(self.device)

    def compute(self) -> dict[str, Any]:
        from tailgraph.evaluation.openimages import ap_metrics

        nr = len(self.predicates)
        empty = isinstance(self.scores, list) and not self.scores
        scores = (
            np.zeros((0, nr)) if empty else dim_zero_cat(self.scores).reshape(-1, nr).cpu().numpy()
        )
        labels = (
            np.zeros((0, nr), bool)
            if empty
            else dim_zero_cat(self.labels).reshape(-1, nr).cpu().numpy() > 0.5
        )
        return ap_metrics(
            scores,
            labels,
            self.missed.cpu().numpy().astype(np.int64),
            self.predicates,
            self.ignore,
            self.background,
        )
