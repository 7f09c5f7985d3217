"""The ImageNet-VidVRD protocol (``vidvrd``): multi-label targets over each track pair of each
frame, and the assembly of video-level relation instances from frame or segment predictions
for the RelDet / RelTag metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from tailgraph.evaluation.metric import EvalMetric, VidVRDMetric
from tailgraph.modeling.types import SegmentRelationModel
from tailgraph.protocols.base import LossGroup, Protocol
from tailgraph.protocols.files import VidVRDFiles
from tailgraph.structures import SceneGraph, SegmentBatch, SegmentPrediction
from tailgraph.vocab import Vocabulary

__all__ = ["VidVRDProtocol", "VidVRDFrameMetric", "frames_to_relation_instances"]


def frames_to_relation_instances(
    frames: Sequence[SceneGraph],
    preds: Sequence[Any],
    vocab: Vocabulary,
    per_pair: int = 5,
    per_video: int = 200,
) -> list[dict[str, Any]]:
    """Video-level relation instances from per-frame pair scores (VidVRD's results format).

    The frames of one video, in order, carry track ids; each frame's prediction scores its
    ordered pairs. For each (subject track, object track) the frames in which the pair was
    scored are split into runs of consecutive frames; a run's predicate scores are the mean of
    its frames' scores, and its ``per_pair`` best predicates become instances spanning the run
    (score = that mean), with the two tracks' boxes as trajectories. The ``per_video`` best
    instances are kept (VidVRD-II keeps 200).

    Returns:
        ``[{"triplet": [subject class, predicate, object class], "score", "duration": [b, e),
        "sub_traj", "obj_traj"}]`` with predicate and class names from ``vocab``.
    """
    tracks: dict[tuple[int, int], dict[int, tuple[Any, Any, Any, int, int]]] = {}
    for g, p in zip(frames, preds):
        if g.track_ids is None:
            raise ValueError(f"frame {g.image_id!r} has no track ids (VidVRD frames carry them)")
        fid = int(str(g.image_id).rsplit("/", 1)[1])
        tids = g.track_ids.tolist()
        for (a, b), sc in zip(p.pairs.tolist(), p.predicate_scores):
            tracks.setdefault((tids[a], tids[b]), {})[fid] = (
                p.boxes[a],
                p.boxes[b],
                sc,
                int(p.labels[a]),
                int(p.labels[b]),
            )
    fg = torch.tensor(vocab.foreground_predicates)
    out = []
    for by_frame in tracks.values():
        fids = sorted(by_frame)
        runs, start = [], 0
        for k in range(1, len(fids) + 1):
            if k == len(fids) or fids[k] != fids[k - 1] + 1:
                runs.append(fids[start:k])
                start = k
        for run in runs:
            rows = [by_frame[f] for f in run]
            mean = torch.stack([r[2] for r in rows]).float().mean(0)[fg]
            top = torch.topk(mean, min(per_pair, mean.numel()))
            s_cls, o_cls = vocab.object_classes[rows[0][3]], vocab.object_classes[rows[0][4]]
            sub = [r[0].tolist() for r in rows]
            obj = [r[1].tolist() for r in rows]
            for score, j in zip(top.values.tolist(), top.indices.tolist()):
                out.append(
                    {
                        "triplet": [s_cls, vocab.predicates[int(fg[j])], o_cls],
                        "score": float(score),
                        "duration": [run[0], run[-1] + 1],
                        "sub_traj": sub,
                        "obj_traj": obj,
                    }
                )
    out.sort(key=lambda r: -r["score"])  # type: ignore[operator]
    return out[:per_video]


class VidVRDFrameMetric(EvalMetric):
    """The VidVRD metric fed frame by frame (predictions gathered per video and turned into
    relation instances by :func:`frames_to_relation_instances` at ``compute``) or segment by
    segment (:class:`SegmentPrediction` s, associated per video at ``compute`` by
    ``associate``); the ground truth is the videos' annotated relation instances.

    Each process assembles the videos of its own shard (a video never spans two shards); the
    per-video statistics are then reduced across processes by the inner
    :class:`VidVRDMetric`.

    Args:
        vocab: the VidVRD vocabulary.
        videos: the evaluated :class:`VideoSceneGraph` s (their relation instances are the
            ground truth).
        ks: the RelDet K values.
        associate: joins one video's per-segment instance lists (a segment model's
            ``associate``); needed for segment predictions only.
    """

    full_state_update = False

    def __init__(
        self,
        vocab: Vocabulary,
        videos: Sequence[Any] | None,
        ks: Sequence[int],
        associate: Callable[[list[list[dict]]], list[dict]] | None = None,
        **kwargs: Any,
    ) -> None:
        from tailgraph.data.vidvrd import to_groundtruth

        super().__init__(**kwargs)
        self.vocab = vocab
        self.inner = VidVRDMetric(
            [vocab.predicates[i] for i in vocab.foreground_predicates], det_nreturns=ks
        )
        self.gt: dict[Any, list] = to_groundtruth(videos) if videos else {}
        self.associate = associate
        self.frames: dict[Any, list] = {}
        self.segments: dict[Any, list] = {}

    def prime(self) -> None:
        self.inner.prime()

    def update(
        self,
        gts: Sequence[SceneGraph] = (),
        preds: Sequence[Any] = (),
        segments: Sequence[SegmentPrediction] = (),
    ) -> None:
        """Frame predictions with their ground-truth frames (track ids included), or
        ``segments``: segment-level predictions (VidVRD-II). Both pass through torchmetrics'
        ``update``, so ``compute`` knows the metric was fed and never returns a result cached
        before the last update."""
        if segments and self.associate is None:
            raise ValueError("segment predictions need the segment model's association")
        for vid, begin, instances in segments:
            self.segments.setdefault(vid, []).append((begin, instances))
        for g, p in zip(gts, preds):
            vid = str(g.image_id).rsplit("/", 1)[0]
            self.frames.setdefault(vid, []).append((g, p))

    def update_segments(self, segments: Sequence[SegmentPrediction]) -> None:
        """Segment-level predictions (VidVRD-II): ``update(segments=...)``."""
        self.update(segments=segments)

    def compute(self) -> dict[str, Any]:
        if not self.gt:
            raise ValueError(
                "the vidvrd metric needs the evaluated videos' relation instances (the data "
                "module's eval_graphs)"
            )
        prediction = {}
        for vid, segs in self.segments.items():
            segs.sort(key=lambda bi: bi[0])
            prediction[vid] = self.associate([inst for _, inst in segs])  # type: ignore[misc]
        for vid, items in self.frames.items():
            items.sort(key=lambda gp: int(str(gp[0].image_id).rsplit("/", 1)[1]))
            prediction[vid] = frames_to_relation_instances(
                [g for g, _ in items], [p for _, p in items], self.vocab
            )
        self.inner.reset()
        self.inner.prime()
        self.inner.update({v: r for v, r in self.gt.items() if v in prediction}, prediction)
        return self.inner.compute()

    def reset(self) -> None:
        super().reset()
        self.frames = {}
        self.segments = {}
        self.inner.reset()


class VidVRDProtocol(Protocol):
    """ImageNet-VidVRD: multi-label (sigmoid) targets over the predicates of each track pair of
    each frame; RelDet / RelTag metrics over video-level relation instances assembled from the
    frames' pair scores (:func:`frames_to_relation_instances`)."""

    name = "vidvrd"
    files = VidVRDFiles
    folder_input = None
    default_ks = (50, 100)
    monitor = "RelDet_mAP"

    def loss_groups(self) -> list[LossGroup]:
        fg = tuple(self.vocab.foreground_predicates)
        return [LossGroup("predicate", fg, False)]

    def make_metric(self, train_triplets=None, eval_graphs=None, model=None):
        associate = model.associate if isinstance(model, SegmentRelationModel) else None
        return VidVRDFrameMetric(self.vocab, eval_graphs, self.ks, associate)

    def update_metric(self, metric: Any, batch: Any, preds: list) -> None:
        if isinstance(batch, SegmentBatch):
            metric.update_segments(preds)
        else:
            super().update_metric(metric, batch, preds)

    def collate_predictions(self, model: Any, preds: list) -> Any:
        """Frame predictions as they are; segment predictions associated per video
        (video id → relation instances, VidVRD's results layout)."""
        if not preds or not isinstance(preds[0], SegmentPrediction):
            return preds
        by_video: dict[Any, list] = {}
        for vid, begin, instances in preds:
            by_video.setdefault(vid, []).append((begin, instances))
        return {
            str(v): model.associate([inst for _, inst in sorted(segs, key=lambda x: x[0])])
            for v, segs in by_video.items()
        }
