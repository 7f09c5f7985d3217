"""The relation model: (optional) pixel features → context model → predicate head.

:class:`RelationModel` is a plain ``nn.Module``; the Lightning module only wires it to a loss
and metrics, so it can be used in any training loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.modeling.pairs import all_pairs, iter_pair_chunks
from tailgraph.modeling.roi import PixelFeatures
from tailgraph.modeling.types import (
    ContextObjectClassifier,
    HeadOutput,
    ObjectOutput,
    RelationInputs,
)
from tailgraph.structures import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    GraphBatch,
    Predictions,
    SceneGraph,
    Task,
)

__all__ = [
    "GraphBatch",
    "RelationOutput",
    "RelationModel",
    "all_pairs",
    "detections_to_graphs",
    "SGDetPipeline",
    "run_detector",
    "detector_images",
]


@dataclass
class RelationOutput:
    """Model outputs for a batch (objects and pairs of all images concatenated).

    Attributes:
        pairs: ``[P, 2]`` global object rows (subject, object).
        pair_to_img: ``[P]``.
        obj_to_img: ``[N]``.
        obj_labels: ``[N]`` labels used (GT in PredCls, argmax of ``obj_logits`` otherwise).
        obj_scores: ``[N]`` object scores (1 in PredCls).
        obj_logits: ``[N, C]`` object logits, or ``None`` in PredCls.
        predicate_logits: ``[P, R]``.
        predicate_probs: ``[P, R]`` scores used for ranking.
        extras: head / context extras (analysis, and the auxiliary outputs a method trains:
            FReMuRe's ``frequency_probe``).
        head_output: the head's own :class:`HeadOutput` (for head regularisers), or ``None``.
        pair_score_logits: ``[P]`` the context's pair relatedness logits (VCTree), or ``None``.
        obj_features: ``[N, F]`` the object classifier's (tracked) features, or ``None``.
        obj_pre_logits: ``[N, C]`` the object classifier's label-distribution logits, or
            ``None``.
        memory_writes: the context's ``[(memory bank, pre-fusion features)]``.
    """

    pairs: torch.Tensor
    pair_to_img: torch.Tensor
    obj_to_img: torch.Tensor
    obj_labels: torch.Tensor
    obj_scores: torch.Tensor
    obj_logits: torch.Tensor | None
    predicate_logits: torch.Tensor
    predicate_probs: torch.Tensor
    extras: dict = field(default_factory=dict)
    head_output: HeadOutput | None = None
    pair_score_logits: torch.Tensor | None = None
    obj_features: torch.Tensor | None = None
    obj_pre_logits: torch.Tensor | None = None
    memory_writes: list = field(default_factory=list)


class RelationModel(nn.Module):
    """Features → context → predicate head, for PredCls / SGCls on given boxes.

    Args:
        context: a context model ``forward(RelationInputs) -> ContextOutput``.
        head: a predicate head ``forward(pair_feats [P, H]) -> HeadOutput``; ``None`` when the
            context itself returns ``freq_logits`` (the FREQ baseline).
        num_classes: object classes ``C`` (incl. background).
        features: pixel feature extractor; ``None`` = layout-only model.
        object_classifier: ``obj_feats [N, D] -> logits [N, C]`` for SGCls when the context
            model does not classify objects itself.
        task: PredCls or SGCls (SGDet runs through a detector that supplies boxes).
        use_freq_bias: add the context's ``freq_logits`` (if any) to the head's logits.
        pair_chunk_size: at inference (``torch.no_grad``), compute union features, context and
            head for at most this many pairs at a time (SGDet: 80 boxes per image are 6,320
            pairs); the trunk runs once per batch. Only for context models that score pairs
            independently given the objects (all image context models here).

    Shapes:
        ``forward(batch: GraphBatch) -> RelationOutput``.
    """

    def __init__(
        self,
        context: nn.Module,
        head: nn.Module | None,
        num_classes: int,
        features: PixelFeatures | None = None,
        object_classifier: nn.Module | None = None,
        task: Task | str = Task.PREDCLS,
        use_freq_bias: bool = True,
        pair_chunk_size: int | None = None,
        feature_cache: object | None = None,
    ) -> None:
        super().__init__()
        self.context = context
        self.head = head
        self.features = features
        self.object_classifier = object_classifier
        self.num_classes = num_classes
        self.task = Task.parse(task)
        self.use_freq_bias = use_freq_bias
        self.pair_chunk_size = pair_chunk_size
        self.feature_cache = feature_cache
        self.detector: nn.Module | None = None  # the SGDet detector stage (set by build_model)

    def build_inputs(self, batch: GraphBatch) -> RelationInputs:
        graphs = batch.graphs
        device = graphs[0].boxes.device if graphs else torch.device("cpu")
        num_objs = [g.num_boxes for g in graphs]
        boxes = (
            torch.cat([g.boxes for g in graphs]) if graphs else torch.zeros((0, 4), device=device)
        )
        labels = (
            torch.cat([g.labels for g in graphs])
            if graphs
            else torch.zeros(0, dtype=torch.int64, device=device)
        )
        obj_to_img = torch.repeat_interleave(
            torch.arange(len(graphs), device=device), torch.tensor(num_objs, device=device)
        )
        sizes = torch.tensor(
            [[g.height, g.width] for g in graphs], dtype=torch.float32, device=device
        ).reshape(-1, 2)
        if batch.pairs is None:
            pairs, pair_to_img = all_pairs(num_objs, device=device)
        else:
            offsets = torch.tensor([0] + num_objs[:-1], device=device).cumsum(0)
            pairs = (
                torch.cat([p.reshape(-1, 2) + offsets[i] for i, p in enumerate(batch.pairs)])
                if batch.pairs
                else torch.zeros((0, 2), dtype=torch.int64, device=device)
            )
            pair_to_img = (
                torch.cat(
                    [
                        torch.full(
                            (p.reshape(-1, 2).shape[0],), i, dtype=torch.int64, device=device
                        )
                        for i, p in enumerate(batch.pairs)
                    ]
                )
                if batch.pairs
                else torch.zeros(0, dtype=torch.int64, device=device)
            )
        obj_feats = union_feats = None
        self._fmap = None
        if self.feature_cache is not None:
            # frozen-backbone mode: object features read from the HDF5 cache (no pixels needed)
            obj_feats = torch.cat([self.feature_cache.features(g).to(device) for g in graphs])  # type: ignore[attr-defined]
        elif self.features is not None:
            if batch.images is None or batch.scales is None:
                raise ValueError(
                    "this model reads pixels: the batch has no images (layout-only data?)"
                )
            if self._chunking(pairs):
                self._fmap = self.features.feature_map(batch.images)
                obj_feats = self.features.object_features(
                    self._fmap, batch.scales, boxes, obj_to_img
                )
            else:
                obj_feats, union_feats = self.features(
                    batch.images, batch.scales, boxes, obj_to_img, pairs
                )
        scores = None
        if self.task is Task.PREDCLS:
            dists = F.one_hot(labels, self.num_classes).to(boxes.dtype)
            scores = torch.ones(labels.shape[0], dtype=boxes.dtype, device=device)
        elif self.task is Task.SGDET:
            dists = torch.cat([_detector_field(g, "label_dists") for g in graphs]).to(boxes.dtype)
            scores = torch.cat([_detector_field(g, "label_scores") for g in graphs]).to(boxes.dtype)
        else:
            dists = None
        return RelationInputs(
            boxes=boxes,
            image_sizes=sizes,
            obj_to_img=obj_to_img,
            labels=labels if self.task is not Task.SGCLS else None,
            label_dists=dists,
            pairs=pairs,
            pair_to_img=pair_to_img,
            obj_feats=obj_feats,
            union_feats=union_feats,
            obj_scores=scores,
        )

    def forward(self, batch: GraphBatch) -> RelationOutput:
        inp = self.build_inputs(batch)
        gt_labels = torch.cat([g.labels for g in batch.graphs])
        obj_logits = None
        obj_out: ObjectOutput | None = None
        if self.task is not Task.PREDCLS and self.object_classifier is not None:
            if inp.obj_feats is None:
                raise ValueError("SGCls with a separate object classifier needs pixel features")
            if isinstance(self.object_classifier, ContextObjectClassifier):  # TEMPURA's
                obj_out = self.object_classifier(inp.obj_feats, inp)
                obj_logits = obj_out.logits
            else:
                obj_logits = self.object_classifier(inp.obj_feats)
            probs = torch.softmax(obj_logits, dim=-1)
            inp.label_dists = probs
            inp.obj_scores, idx = probs[:, 1:].max(dim=1)
            inp.labels = 1 + idx
        ctx = (
            self._context_in_chunks(inp, batch) if self._chunking(inp.pairs) else self.context(inp)
        )
        if ctx.obj_logits is not None:
            obj_logits = ctx.obj_logits
        if self.task is Task.PREDCLS:
            obj_labels = gt_labels
            obj_scores = torch.ones(gt_labels.shape[0], device=gt_labels.device)
        elif self.task is Task.SGDET and obj_out is not None:
            # TEMPURA's classifier re-classifies the detections: its labels and scores
            obj_labels, obj_scores = inp.labels, inp.obj_scores  # type: ignore[assignment]
        elif self.task is Task.SGDET:  # the detector's labels and scores
            obj_labels = gt_labels
            obj_scores = (
                torch.cat([_detector_field(g, "label_scores") for g in batch.graphs])
                .to(gt_labels.device)
                .float()
            )
        else:
            if obj_logits is None:
                raise ValueError(
                    f"task {self.task.value} needs an object classifier or a context model "
                    "that classifies objects"
                )
            probs = torch.softmax(obj_logits, dim=-1)
            obj_scores, idx = probs[:, 1:].max(dim=1)
            obj_labels = idx + 1
        if self.head is None:
            if ctx.freq_logits is None:
                raise ValueError(
                    "RelationModel without a head needs a context model that returns freq_logits"
                )
            logits = ctx.freq_logits
            probs = torch.softmax(logits, dim=-1)
            extras: dict = {}
            out = None
        else:
            out = self.head(ctx.pair_feats)
            logits = out.logits
            probs = out.probs if out.probs is not None else torch.softmax(logits, dim=-1)
            if self.use_freq_bias and ctx.freq_logits is not None:
                # MOTIFS-style frequency bias: added to the logits before the softmax.
                logits = logits + ctx.freq_logits
                probs = torch.softmax(logits, dim=-1)
            extras = dict(out.extras)
        extras.update(ctx.extras)
        return RelationOutput(
            pairs=inp.pairs,
            pair_to_img=inp.pair_to_img,
            obj_to_img=inp.obj_to_img,
            obj_labels=obj_labels,
            obj_scores=obj_scores,
            obj_logits=obj_logits,
            predicate_logits=logits,
            predicate_probs=probs,
            extras=extras,
            head_output=out,
            pair_score_logits=ctx.pair_score_logits,
            obj_features=obj_out.features if obj_out is not None else None,
            obj_pre_logits=obj_out.pre_logits if obj_out is not None else None,
            memory_writes=list(ctx.memory_writes),
        )

    def _chunking(self, pairs: torch.Tensor) -> bool:
        return (
            bool(self.pair_chunk_size)
            and not torch.is_grad_enabled()
            and pairs.shape[0] > self.pair_chunk_size  # type: ignore[operator]
        )

    def _context_in_chunks(self, inp: RelationInputs, batch: GraphBatch):
        """Run the context model on chunks of pairs and concatenate the pair outputs."""
        from dataclasses import replace

        from tailgraph.modeling.types import ContextOutput

        feats, freqs, extras_pairs, obj_logits = [], [], [], None
        for start, chunk in iter_pair_chunks(inp.pairs, self.pair_chunk_size):  # type: ignore[arg-type]
            union = None
            if self.features is not None:
                union = self.features.union_features_of(
                    self._fmap,  # type: ignore[arg-type]
                    batch.scales,  # type: ignore[arg-type]
                    inp.boxes,
                    inp.obj_to_img,
                    chunk,
                )
            out = self.context(
                replace(
                    inp,
                    pairs=chunk,
                    pair_to_img=inp.pair_to_img[start : start + self.pair_chunk_size],  # type: ignore[operator]
                    union_feats=union,
                )
            )
            feats.append(out.pair_feats)
            if out.freq_logits is not None:
                freqs.append(out.freq_logits)
            if out.pair_score_logits is not None:
                extras_pairs.append(out.pair_score_logits)
            obj_logits = out.obj_logits
        return ContextOutput(
            pair_feats=torch.cat(feats),
            obj_logits=obj_logits,
            freq_logits=torch.cat(freqs) if freqs else None,
            pair_score_logits=torch.cat(extras_pairs) if extras_pairs else None,
        )

    def detect(self, batch: GraphBatch) -> GraphBatch:
        """SGDet: the batch of detected graphs (:func:`run_detector`); other tasks: the batch
        unchanged."""
        if self.task is not Task.SGDET:
            return batch
        if self.detector is None:
            raise RuntimeError("an SGDet model needs a detector stage")
        return run_detector(self.detector, batch)

    @torch.no_grad()
    def predict(self, batch: GraphBatch) -> list[Predictions]:
        """Per-image :class:`Predictions` of a batch that carries its candidate pairs."""
        return self.to_predictions(batch, self(batch))

    @torch.no_grad()
    def to_predictions(self, batch: GraphBatch, out: RelationOutput) -> list[Predictions]:
        """Split a batch output into per-image :class:`Predictions` (local pair indices, CPU)."""
        preds = []
        offset = 0
        for i, g in enumerate(batch.graphs):
            n = g.num_boxes
            pm = out.pair_to_img == i
            preds.append(
                Predictions(
                    image_id=g.image_id,
                    boxes=g.boxes.detach().cpu(),
                    labels=out.obj_labels[offset : offset + n].detach().cpu(),
                    label_scores=out.obj_scores[offset : offset + n].detach().float().cpu(),
                    pairs=(out.pairs[pm] - offset).cpu(),
                    predicate_scores=out.predicate_probs[pm].detach().float().cpu(),
                )
            )
            offset += n
        return preds


def _detector_field(g: SceneGraph, key: str) -> torch.Tensor:
    if key not in g.extras:
        raise ValueError(
            f"SGDet graph {g.image_id!r} lacks the detector's '{key}' (build it with "
            "detections_to_graphs)"
        )
    return g.extras[key]


def detections_to_graphs(graphs: list[SceneGraph], detections: list) -> list[SceneGraph]:
    """Graphs of detected objects (no relations) carrying the detector's class distributions and
    scores, with the image ids, sizes and image paths of the ground-truth graphs."""
    out = []
    for g, d in zip(graphs, detections):
        out.append(
            SceneGraph(
                g.image_id,
                g.width,
                g.height,
                d.boxes.detach().cpu(),
                d.labels.detach().cpu(),
                torch.zeros((0, 3), dtype=torch.int64),
                image_path=g.image_path,
                track_ids=None if d.track_ids is None else d.track_ids.cpu(),
                extras={
                    "label_dists": d.label_dists.detach().cpu(),
                    "label_scores": d.scores.detach().cpu(),
                },
            )
        )
    return out


class SGDetPipeline(nn.Module):
    """Detector → relation model for SGDet.

    Args:
        detector: :class:`tailgraph.modeling.detector.SyntheticDetector` (called on the GT graphs)
            or an image detector such as :class:`tailgraph.modeling.detector.FasterRCNNDetector`
            (called on the images: see :meth:`detect`).
        model: a :class:`RelationModel` with ``task=Task.SGDET`` (use ``pair_chunk_size`` for
            many boxes).

    ``forward(batch)`` returns per-image :class:`Predictions` (detected boxes, labels, scores and
    all ordered pairs of detections).
    """

    def __init__(self, detector: nn.Module, model: RelationModel) -> None:
        super().__init__()
        if model.task is not Task.SGDET:
            raise ValueError("SGDetPipeline needs a RelationModel with task=sgdet")
        self.detector, self.model = detector, model

    @torch.no_grad()
    def detect(self, batch: GraphBatch) -> GraphBatch:
        """The batch with its graphs replaced by detections (see :func:`run_detector`)."""
        return run_detector(self.detector, batch)

    @torch.no_grad()
    def forward(self, batch: GraphBatch) -> list[Predictions]:
        det_batch = self.detect(batch)
        return self.model.to_predictions(det_batch, self.model(det_batch))


def detector_images(batch: GraphBatch) -> list[torch.Tensor]:
    """The batch's images as an image detector expects them: ``[3, h, w]`` RGB in [0, 1]
    (the ImageNet normalisation undone), the zero padding cropped away, one per image, at the
    batch's resized resolution (``scales`` maps original pixels to it)."""
    if batch.images is None or batch.scales is None:
        raise ValueError("a pixel detector needs images (the batch is layout-only)")
    mean = torch.tensor(IMAGENET_MEAN, device=batch.images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=batch.images.device).view(3, 1, 1)
    out = []
    for img, g, s in zip(batch.images, batch.graphs, batch.scales.tolist()):
        h = min(img.shape[1], max(1, round(g.height * s)))
        w = min(img.shape[2], max(1, round(g.width * s)))
        out.append((img[:, :h, :w] * std + mean).clamp(0.0, 1.0))
    return out


@torch.no_grad()
def run_detector(detector: nn.Module, batch: GraphBatch) -> GraphBatch:
    """Detect the objects of ``batch`` and return the batch of detected graphs.

    A :class:`SyntheticDetector` reads the ground-truth graphs. Any other detector is called
    on :func:`detector_images` and its boxes, in the pixels of the images it was given, are
    mapped back to original image pixels (per axis: original size / size given, which undoes
    the resize exactly, rounding included).
    """
    from tailgraph.modeling.detector import SyntheticDetector

    if isinstance(detector, SyntheticDetector):
        dets = detector(batch.graphs)
    else:
        images = detector_images(batch)
        dets = detector(images)
        for d, img, g in zip(dets, images, batch.graphs):
            fx, fy = g.width / img.shape[2], g.height / img.shape[1]
            b = d.boxes * torch.tensor([fx, fy, fx, fy], dtype=d.boxes.dtype, device=d.boxes.device)
            b[:, 0::2] = b[:, 0::2].clamp(0, g.width)
            b[:, 1::2] = b[:, 1::2].clamp(0, g.height)
            d.boxes = b
    return GraphBatch(detections_to_graphs(batch.graphs, dets), batch.images, batch.scales)
