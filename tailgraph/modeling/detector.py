"""The detector stage of SGDet / SGCls: a common interface and two implementations.

* :class:`SyntheticDetector` plays the object detector on synthetic data: the true boxes
  jittered, dropped (miss rate) and duplicated (false positives), with class scores from a
  configurable confusion; deterministic per seed, and consistent across the frames of a video
  (stable track ids) when ``tracking`` is on.
* :class:`FasterRCNNDetector` wraps torchvision's Faster R-CNN (ResNet-50 FPN); weights come
  from a user path (``torch.load(weights_only=True)``), never from a download. Without
  weights it runs from random initialisation (useful only for tests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tailgraph.errors import DataError
from tailgraph.structures import SceneGraph

__all__ = ["Detections", "SyntheticDetector", "FasterRCNNDetector"]


@dataclass
class Detections:
    """Detected objects of one image.

    Attributes:
        boxes: ``[N, 4]`` xyxy pixels. labels: ``[N]`` (argmax of the foreground scores).
        scores: ``[N]`` label confidence. label_dists: ``[N, C]`` class distribution
        (column 0 = background). features: ``[N, D]`` RoI features or ``None``.
        track_ids: ``[N]`` track ids (video, tracking on) or ``None``.
        source: ``[N]`` index of the GT box a synthetic detection came from (-1 = none).
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    label_dists: torch.Tensor
    features: torch.Tensor | None = None
    track_ids: torch.Tensor | None = None
    source: torch.Tensor | None = None


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


class SyntheticDetector(nn.Module):
    """A configurable imitation of a detector over ground-truth boxes.

    Args:
        num_classes: ``C`` including background.
        jitter: std of box-corner noise relative to the box size.
        miss_rate: probability that a true object is not detected.
        duplicate_rate: probability that a detected object gets an extra, shifted detection.
        confusion: probability mass moved from the true class to ``confusable`` other classes.
        confusable: number of classes each class is confused with (fixed per seed).
        tracking: consistent detections across the frames of a video (same track → same
            miss / confusion draw, stable track ids); needs ``track_ids`` on the frames.
        seed: random seed (the detections are a pure function of seed, image and box).
    """

    confusable: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        jitter: float = 0.05,
        miss_rate: float = 0.1,
        duplicate_rate: float = 0.1,
        confusion: float = 0.3,
        confusable: int = 2,
        tracking: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, v in (
            ("miss_rate", miss_rate),
            ("duplicate_rate", duplicate_rate),
            ("confusion", confusion),
        ):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        self.c, self.jitter, self.miss_rate, self.dup = (
            num_classes,
            jitter,
            miss_rate,
            duplicate_rate,
        )
        self.confusion, self.tracking, self.seed = confusion, tracking, seed
        rng = np.random.default_rng(_seed("confusable", seed))
        table = np.zeros((num_classes, max(1, confusable)), dtype=np.int64)
        for k in range(1, num_classes):
            others = [j for j in range(1, num_classes) if j != k] or [k]
            table[k] = rng.choice(others, size=max(1, confusable), replace=len(others) < confusable)
        self.register_buffer("confusable", torch.from_numpy(table), persistent=False)

    def _dist(self, label: int, rng: np.random.Generator) -> np.ndarray:
        d = np.zeros(self.c, dtype=np.float32)
        mass = self.confusion * rng.uniform(0.5, 1.5)
        mass = min(mass, 0.95)
        d[label] += 1 - mass
        others = self.confusable[label].tolist()
        w = rng.dirichlet(np.ones(len(others)))
        for j, wj in zip(others, w):
            d[j] += mass * wj
        return d

    def detect_graph(self, g: SceneGraph, video_id: object = None) -> Detections:
        """Detections for one annotated image / frame."""
        n = g.num_boxes
        boxes, dists, tracks, source = [], [], [], []
        w, h = float(g.width), float(g.height)
        for i in range(n):
            tid = int(g.track_ids[i]) if (self.tracking and g.track_ids is not None) else None
            if self.tracking and tid is None:
                raise DataError(
                    "tracking needs track_ids on every frame", sample=g.image_id, field="track_ids"
                )
            key = (
                (self.seed, video_id, "track", tid)
                if tid is not None
                else (self.seed, g.image_id, i)
            )
            stable = np.random.default_rng(_seed(*key))  # per object (per track when tracking)
            frame_rng = np.random.default_rng(_seed(self.seed, g.image_id, i, "frame"))
            if stable.random() < self.miss_rate:
                continue
            b = g.boxes[i].numpy().astype(np.float64)
            size = np.array([b[2] - b[0], b[3] - b[1]] * 2)
            jit = b + frame_rng.normal(0, self.jitter, 4) * size
            jb = np.array(
                [min(jit[0], jit[2]), min(jit[1], jit[3]), max(jit[0], jit[2]), max(jit[1], jit[3])]
            )
            jb = np.clip(jb, 0, [w - 1, h - 1, w - 1, h - 1])
            d = self._dist(int(g.labels[i]), stable)
            boxes.append(jb)
            dists.append(d)
            tracks.append(tid if tid is not None else -1)
            source.append(i)
            if frame_rng.random() < self.dup:
                shift = frame_rng.uniform(0.15, 0.35, 2) * size[:2] * frame_rng.choice([-1, 1], 2)
                db = np.clip(jb + np.concatenate([shift, shift]), 0, [w - 1, h - 1, w - 1, h - 1])
                dd = self._dist(int(g.labels[i]), frame_rng) * 0.6
                dd[0] += 0.4
                boxes.append(db)
                dists.append(dd)
                tracks.append(-1)
                source.append(-1)
        if boxes:
            bx = torch.tensor(np.stack(boxes), dtype=torch.float32)
            ds = torch.tensor(np.stack(dists), dtype=torch.float32)
        else:
            bx, ds = torch.zeros((0, 4)), torch.zeros((0, self.c))
        scores, lab = (
            ds[:, 1:].max(dim=1)
            if ds.shape[0]
            else (torch.zeros(0), torch.zeros(0, dtype=torch.int64))
        )
        return Detections(
            bx,
            lab + 1 if ds.shape[0] else lab,
            scores,
            ds,
            None,
            torch.tensor(tracks, dtype=torch.int64) if self.tracking else None,
            torch.tensor(source, dtype=torch.int64),
        )

    def forward(self, graphs: Sequence[SceneGraph], video_id: object = None) -> list[Detections]:
        return [self.detect_graph(g, video_id) for g in graphs]


class FasterRCNNDetector(nn.Module):
    """torchvision Faster R-CNN (ResNet-50 FPN) returning boxes, labels, scores, per-box class
    distributions and RoI features.

    Args:
        num_classes: ``C`` including background.
        weights_path: a state dict of ``fasterrcnn_resnet50_fpn`` with ``num_classes`` outputs
            (read with ``weights_only=True``); ``None`` = random initialisation.
        score_thresh, nms_thresh, detections_per_img: torchvision's post-processing.
        min_size, max_size: torchvision's input resizing.

    Shapes:
        ``forward(images: list of [3, H, W] float tensors in [0, 1]) -> list[Detections]``;
        ``features`` are the box head's ``[N, 1024]`` representations of the final boxes and
        ``label_dists`` the softmax of the box predictor on them.
    """

    def __init__(
        self,
        num_classes: int,
        weights_path: str | None = None,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 80,
        min_size: int = 600,
        max_size: int = 1000,
    ) -> None:
        super().__init__()
        from torchvision.models.detection import fasterrcnn_resnet50_fpn

        self.model = fasterrcnn_resnet50_fpn(
            weights=None,
            weights_backbone=None,
            num_classes=num_classes,
            box_score_thresh=score_thresh,
            box_nms_thresh=nms_thresh,
            box_detections_per_img=detections_per_img,
            min_size=min_size,
            max_size=max_size,
        )
        if weights_path is not None:
            path = Path(weights_path)
            if not path.is_file():
                raise DataError(
                    "detector weights file not found", file=str(path), field="weights_path"
                )
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise DataError(
                    f"cannot read detector weights ({exc.__class__.__name__}: {exc})",
                    file=str(path),
                ) from None
            state = state.get("model", state) if isinstance(state, dict) else state
            try:
                self.model.load_state_dict(state)
            except RuntimeError as exc:
                raise DataError(
                    f"weights do not fit fasterrcnn_resnet50_fpn with {num_classes} classes: "
                    f"{str(exc)[:300]}",
                    file=str(path),
                ) from None
        self.num_classes = num_classes

    @torch.no_grad()
    def forward(self, images: list[torch.Tensor]) -> list[Detections]:
        m = self.model
        was_training = m.training
        m.eval()
        try:
            original = [img.shape[-2:] for img in images]
            batch, _ = m.transform(images)
            feats = m.backbone(batch.tensors)
            proposals, _ = m.rpn(batch, feats)
            dets, _ = m.roi_heads(feats, proposals, batch.image_sizes)
            boxes = [d["boxes"] for d in dets]
            pooled = m.roi_heads.box_roi_pool(feats, boxes, batch.image_sizes)
            rep = m.roi_heads.box_head(pooled)
            logits, _ = m.roi_heads.box_predictor(rep)
            dists = torch.softmax(logits, dim=-1).split([b.shape[0] for b in boxes])
            reps = rep.split([b.shape[0] for b in boxes])
            dets = m.transform.postprocess(dets, batch.image_sizes, original)
        finally:
            m.train(was_training)
        return [
            Detections(d["boxes"], d["labels"], d["scores"], dist, r)
            for d, dist, r in zip(dets, dists, reps)
        ]
