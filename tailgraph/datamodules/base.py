"""LightningDataModules for Action Genome (one video per batch), Open Images VRD
(negative-mining batches) and ImageNet-VidVRD (30-frame segments), real or synthetic (generated
into ``root`` on first use when asked). The VG150 / synth-vg modules are in
:mod:`tailgraph.datamodules.vg`.

Each module names its protocol (``protocol = "ag" | "oi" | "vidvrd"``), which the engine builds
from the vocabulary (:mod:`tailgraph.protocols`). Validation uses samples held out of
the training split (``val_fraction``, the first ones in file order), never the test split.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from tailgraph.data.images import load_image, pad_images
from tailgraph.data.samplers import (
    AspectBinBatchSampler,
    ShardSampler,
    VideoSampler,
    resize_scale,
    sample_relation_pairs,
)
from tailgraph.errors import DataError
from tailgraph.structures import GraphBatch, SceneGraph, VideoSceneGraph
from tailgraph.vocab import Vocabulary

__all__ = [
    "SplitDataModule",
    "AGDataModule",
    "OIDataModule",
    "VidVRDDataModule",
    "NegativeMiningCollate",
]


class _OIImages(Dataset):
    def __init__(
        self, graphs: list[SceneGraph], shorter: int, longer_max: int, layout_only: bool
    ) -> None:
        self.graphs, self.shorter, self.longer_max, self.layout_only = (
            graphs,
            shorter,
            longer_max,
            layout_only,
        )

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int):
        g = self.graphs[i]
        if self.layout_only:
            return None, 1.0, g
        scale = resize_scale(g.width, g.height, self.shorter, self.longer_max)
        img, s = load_image(g.image_path, round(max(g.width, g.height) * scale), sample=g.image_id)
        return img, s, g


class NegativeMiningCollate:
    """Zero-pad a batch of images and choose its relation pairs.

    Args:
        max_relations: pairs per batch (paper: 400).
        min_pos, max_pos: bounds on the fraction of positives among the chosen pairs.
        negatives: ``mined`` — every unannotated ordered pair of annotated boxes is a candidate
            negative ("no relation"); ``gt_only`` — only annotated pairs train (the slides'
            baseline, which never sees a negative); ``all`` — every pair (evaluation).
        seed: randomness of the pair sampling.
    """

    def __init__(
        self,
        max_relations: int = 400,
        min_pos: float = 0.25,
        max_pos: float = 0.75,
        negatives: str = "mined",
        seed: int = 0,
    ) -> None:
        if negatives not in ("mined", "gt_only", "all"):
            raise ValueError(f"negatives must be 'mined', 'gt_only' or 'all', got {negatives!r}")
        self.max_relations, self.min_pos, self.max_pos, self.negatives = (
            max_relations,
            min_pos,
            max_pos,
            negatives,
        )
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, items: list) -> GraphBatch:
        graphs = [g for _, _, g in items]
        if self.negatives == "all":
            pairs = None  # the protocol's candidates: every ordered pair
        else:
            max_pos, min_pos = (
                (1.0, 0.0) if self.negatives == "gt_only" else (self.max_pos, self.min_pos)
            )
            chosen = sample_relation_pairs(
                graphs,
                self.max_relations,
                min_pos,
                max_pos,
                self.generator,
                negatives=self.negatives == "mined",
            )
            pairs = [p for p, _ in chosen]
        if items[0][0] is None:
            return GraphBatch(graphs, pairs=pairs)
        images = pad_images([t for t, _, _ in items])
        return GraphBatch(
            graphs, images, torch.tensor([s for _, s, _ in items], dtype=torch.float32), pairs
        )


class SplitDataModule(L.LightningDataModule):
    """Shared logic of the data modules: a ``train`` and a ``test`` split read by ``reader``,
    optionally generated first by ``generator`` (a synthetic variant) when ``marker`` is
    missing under ``root``. Subclasses implement ``_loader(split, shuffle)``.

    Args:
        root: data set folder.
        synth_train, synth_test, synth_size, synth_seed: synthetic generation (0 = never).
        layout_only: read without images.
        num_workers: DataLoader workers.
        val_fraction: fraction of the training samples (the first ones) held out for
            validation; 0 = no validation.
        synth_options: further options of the synthetic generator (e.g. ``head_tail_ratio``).
    """

    protocol = ""  # the engine protocol of this data kind
    reader = ""  # "module:function" taking (root, split, layout_only=...)
    generator = ""  # "module:function" taking (root, num_train=, num_test=, image_size=, seed=)
    marker = ""  # file or folder under root whose presence means "already generated"

    def __init__(
        self,
        root: str,
        synth_train: int = 0,
        synth_test: int = 0,
        synth_size: int = 128,
        synth_seed: int = 0,
        layout_only: bool = False,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        synth_options: dict | None = None,
    ) -> None:
        super().__init__()
        self.synth_options = dict(synth_options or {})
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(
                f"val_fraction must be in [0, 1), got {val_fraction}", field="val_fraction"
            )
        self.root, self.layout_only, self.num_workers, self.val_fraction = (
            root,
            layout_only,
            num_workers,
            val_fraction,
        )
        self.synth = (synth_train, synth_test, synth_size, synth_seed)
        self.vocab: Vocabulary | None = None
        self.splits: dict[str, list] = {}

    @staticmethod
    def _resolve(path: str):
        import importlib

        module, func = path.split(":")
        return getattr(importlib.import_module(module), func)

    def prepare_data(self) -> None:
        if self.synth[0] and not (Path(self.root) / self.marker).exists():
            from tailgraph.data.synthetic import generate_into

            generate_into(
                self.root,
                self.marker,
                lambda out: self._resolve(self.generator)(
                    out,
                    num_train=self.synth[0],
                    num_test=self.synth[1],
                    image_size=self.synth[2],
                    seed=self.synth[3],
                    **self.synth_options,
                ),
            )

    def setup(self, stage: str | None = None) -> None:
        if not Path(self.root).exists() and not self.synth[0]:
            raise DataError("data set folder not found", file=str(self.root), field="root")
        self.prepare_data()
        for split in ("train", "test"):
            if split not in self.splits:
                self.splits[split], vocab = self._resolve(self.reader)(
                    self.root, split, layout_only=self.layout_only, **self.reader_options()
                )
                if split == "train":
                    self.vocab = vocab
        if "val" not in self.splits:
            train = self.splits["train"]
            n_val = round(self.val_fraction * len(train)) if len(train) >= 2 else 0
            self.splits["val"], self.splits["train"] = train[:n_val], train[n_val:]
            if not self.splits["train"]:
                raise DataError("the training split is empty", file=str(self.root), field="train")

    def reader_options(self) -> dict:
        """Further keyword arguments of ``reader`` (none by default)."""
        return {}

    def train_graphs(self) -> list:
        """The training split's images / frames (what the training statistics count)."""
        return self._flat(self.splits["train"])

    def eval_graphs(self, split: str) -> list:
        """The ground truth of ``split`` as its metric reads it (frames for video sets)."""
        return self._flat(self.splits[split])

    @staticmethod
    def _flat(samples: list) -> list:
        return (
            [f for v in samples for f in v.frames]
            if samples and isinstance(samples[0], VideoSceneGraph)
            else list(samples)
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} must define _loader")

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", False) if self.splits.get("val") else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class OIDataModule(SplitDataModule):
    """Open Images VRD (or synth-oi) with the negative-mining paper's batches.

    Args:
        root: data set folder.
        synth_train, synth_test, synth_size, synth_seed: generate synth-oi when ``root`` is empty.
        batch_size: images per batch (paper: 40), drawn from one aspect bin.
        max_relations: relation pairs per batch (paper: 400).
        min_pos, max_pos: bounds on the fraction of positives in a batch (paper: 0.25 / 0.75).
        negatives: ``mined`` (unannotated pairs of annotated boxes train as "no relation") or
            ``gt_only`` (annotated pairs only: the slides' baseline).
        shorter, longer_max: resizing (paper: 480 / 960).
        layout_only: no images.
        num_workers, val_fraction, synth_options: see :class:`SplitDataModule`.
        seed: pair-sampling seed.

    Evaluation batches score every ordered pair of annotated boxes (the OI protocol).
    """

    protocol = "oi"
    reader = "tailgraph.data.openimages:load_oi"
    generator = "tailgraph.data.synthetic.oi:generate_synth_oi"
    marker = "class-descriptions.csv"

    def __init__(
        self,
        root: str = "data/synth-oi",
        synth_train: int = 0,
        synth_test: int = 0,
        synth_size: int = 192,
        synth_seed: int = 0,
        batch_size: int = 40,
        max_relations: int = 400,
        min_pos: float = 0.25,
        max_pos: float = 0.75,
        negatives: str = "mined",
        shorter: int = 480,
        longer_max: int = 960,
        layout_only: bool = False,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        synth_options: dict | None = None,
    ) -> None:
        super().__init__(
            root,
            synth_train,
            synth_test,
            synth_size,
            synth_seed,
            layout_only,
            num_workers,
            val_fraction,
            synth_options,
        )
        if negatives not in ("mined", "gt_only"):
            raise DataError(
                f"negatives must be 'mined' or 'gt_only', got {negatives!r}", field="negatives"
            )
        self.batch_size, self.max_relations, self.shorter, self.longer_max = (
            batch_size,
            max_relations,
            shorter,
            longer_max,
        )
        self.min_pos, self.max_pos, self.negatives, self.seed = min_pos, max_pos, negatives, seed

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        graphs = self.splits[split]
        ds = _OIImages(graphs, self.shorter, self.longer_max, self.layout_only)
        sampler = AspectBinBatchSampler(
            [(g.width, g.height) for g in graphs],
            self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            pad=split == "train",
        )
        if split == "train":
            collate = NegativeMiningCollate(
                self.max_relations, self.min_pos, self.max_pos, self.negatives, self.seed
            )
        else:
            collate = NegativeMiningCollate(negatives="all")
        return DataLoader(
            ds, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers
        )


class _VideoFrames(Dataset):
    """One item per video: a :class:`GraphBatch` of its frames (and their pixels)."""

    def __init__(self, videos: list[VideoSceneGraph], max_size: int, layout_only: bool) -> None:
        self.videos, self.max_size, self.layout_only = videos, max_size, layout_only

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> GraphBatch:
        v = self.videos[i]
        if self.layout_only:
            return GraphBatch(list(v.frames))
        imgs = [load_image(f.image_path, self.max_size, sample=f.image_id) for f in v.frames]
        images = pad_images([t for t, _ in imgs])
        return GraphBatch(
            list(v.frames), images, torch.tensor([s for _, s in imgs], dtype=torch.float32)
        )


class AGDataModule(SplitDataModule):
    """Action Genome (or synth-ag, generated on first use when ``synth_train`` > 0); one video
    per batch (all its frames).

    Args:
        root: data set folder.
        synth_train, synth_test, synth_size, synth_seed: generate synth-ag into ``root`` when
            it has no annotations.
        max_size: frame size fed to the network.
        layout_only: no frame images.
        num_workers, val_fraction: see :class:`SplitDataModule` (validation videos are held
            out of the training videos).
        filter_small_box: read the ``..._filtersmall.pkl`` annotations (boxes with a short
            side > 16 px), as the reference does for SGCls and SGDet; the reference's
            ``-mode`` sets it (false for PredCls, true otherwise), here the recipe does.
        datasize: ``large`` | ``mini`` (the reference's ``-datasize``; ``mini`` keeps the
            first 80000 annotated frames).
    """

    protocol = "ag"
    reader = "tailgraph.data.action_genome:load_ag"
    generator = "tailgraph.data.synthetic.ag:generate_synth_ag"
    marker = "annotations/person_bbox.pkl"

    def __init__(
        self,
        root: str = "data/synth-ag",
        synth_train: int = 0,
        synth_test: int = 0,
        synth_size: int = 128,
        synth_seed: int = 0,
        max_size: int = 128,
        layout_only: bool = False,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        filter_small_box: bool = False,
        datasize: str = "large",
    ) -> None:
        super().__init__(
            root,
            synth_train,
            synth_test,
            synth_size,
            synth_seed,
            layout_only,
            num_workers,
            val_fraction,
        )
        self.max_size = max_size
        self.filter_small_box = filter_small_box
        self.datasize = datasize

    def reader_options(self) -> dict:
        return {"filter_small_box": self.filter_small_box, "datasize": self.datasize}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = _VideoFrames(self.splits[split], self.max_size, self.layout_only)
        return DataLoader(
            ds,
            batch_size=None,
            sampler=VideoSampler(len(ds), shuffle=shuffle, pad=split == "train"),
            num_workers=self.num_workers,
        )


class _Segments(Dataset):
    def __init__(self, videos: list[VideoSceneGraph], length: int, stride: int) -> None:
        from tailgraph.data.vidvrd import split_segments

        self.items = [(v, seg) for v in videos for seg in split_segments(v, length, stride)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        v, seg = self.items[i]
        return {
            "video_id": v.video_id,
            "begin": seg["begin"],
            "end": seg["end"],
            "frames": v.frames[seg["begin"] : seg["end"]],
            "relation_instances": seg["relation_instances"],
        }


class _SegmentFrames(Dataset):
    """One item per segment (training) or per whole video (evaluation): a :class:`GraphBatch`
    of its frames; each frame's relations are the instances active in it."""

    def __init__(
        self,
        videos: list[VideoSceneGraph],
        length: int | None,
        stride: int,
        max_size: int,
        layout_only: bool,
    ) -> None:
        from tailgraph.data.vidvrd import split_segments

        self.frames = _VideoFrames(videos, max_size, layout_only)
        self.items = (
            [
                (i, s["begin"], s["end"])
                for i, v in enumerate(videos)
                for s in split_segments(v, length, stride)
            ]
            if length
            else [(i, 0, len(v)) for i, v in enumerate(videos)]
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> GraphBatch:
        i, b, e = self.items[k]
        v = self.frames.videos[i]
        part = VideoSceneGraph(v.video_id, v.frames[b:e], list(range(b, e)), extras=v.extras)
        return _VideoFrames([part], self.frames.max_size, self.frames.layout_only)[0]


class _TrackletSegments(Dataset):
    """Segments with tracklet features (VidVRD-II); training keeps every positive pair and
    random negatives up to ``max_pairs`` (all positives are kept when they alone exceed it:
    a random subset of them then)."""

    def __init__(
        self, segments: list, mean: torch.Tensor, std: torch.Tensor, max_pairs: int | None
    ) -> None:
        self.segments, self.mean, self.std, self.max_pairs = segments, mean, std, max_pairs

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, i: int):
        from dataclasses import replace

        seg = self.segments[i]
        feats = (seg.feats - self.mean) / self.std
        if self.max_pairs is None or seg.pairs.shape[0] <= self.max_pairs:
            return replace(seg, feats=feats)
        pos = seg.positive.nonzero().flatten()
        neg = (~seg.positive).nonzero().flatten()
        pos = pos[torch.randperm(pos.numel())[: self.max_pairs]]
        neg = neg[torch.randperm(neg.numel())[: self.max_pairs - pos.numel()]]
        keep = torch.cat([pos, neg]).sort().values
        return replace(
            seg,
            feats=feats,
            pairs=seg.pairs[keep],
            targets=seg.targets[keep],
            positive=seg.positive[keep],
            position=seg.position[keep],
        )


_SEGMENT_MEMO: dict[tuple, list] = {}
SEGMENT_CACHE_VERSION = 1


def save_segments(path: str | Path, segments: list) -> None:
    """Write tracklet segments to ``path`` (tensors, ints and strings only: loadable with
    ``weights_only=True``), via a temporary file and a rename."""
    rows = []
    for s in segments:
        rows.append(
            {
                "video_id": s.video_id,
                "begin": int(s.begin),
                "end": int(s.end),
                "t_begin": torch.tensor([t.begin for t in s.tracklets], dtype=torch.int64),
                "t_boxes": [torch.as_tensor(t.boxes) for t in s.tracklets],
                "t_ids": [t.track_id for t in s.tracklets],
                "feats": s.feats,
                "labels": s.labels,
                "pairs": s.pairs,
                "targets": s.targets,
                "positive": s.positive,
                "position": s.position,
            }
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save({"version": SEGMENT_CACHE_VERSION, "segments": rows}, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_segments(path: str | Path) -> list | None:
    """Segments written by :func:`save_segments`, or ``None`` when the file is missing, of
    another version or unreadable (then it is rebuilt)."""
    from tailgraph.structures import Segment, Tracklet

    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != SEGMENT_CACHE_VERSION:
        return None
    out = []
    for r in doc["segments"]:
        tracklets = [
            Tracklet(int(b), boxes.numpy(), tid)
            for b, boxes, tid in zip(r["t_begin"].tolist(), r["t_boxes"], r["t_ids"])
        ]
        out.append(
            Segment(
                r["video_id"],
                r["begin"],
                r["end"],
                tracklets,
                r["feats"],
                r["labels"],
                r["pairs"],
                r["targets"],
                r["positive"],
                r["position"],
            )
        )
    return out


def build_tracklet_segments(
    videos: list[VideoSceneGraph],
    vocab: Vocabulary,
    extractor: Any,
    *,
    length: int,
    stride: int,
    max_size: int,
    source: str,
    jitter: float,
    seed: int,
    pos_viou: float,
    neg_viou: float,
    min_overlap: float,
    training: bool,
    frame_batch: int = 32,
) -> list:
    """The VidVRD-II segments of ``videos`` (:mod:`tailgraph.data.tracklets`): tracklets,
    mean per-frame RoI features from ``extractor``, and (``training``) labelled candidate
    pairs, else every ordered pair of tracklets."""
    import numpy as np

    from tailgraph.data.tracklets import (
        active_instances,
        assign_pairs,
        pair_position,
        segment_tracklets,
    )
    from tailgraph.data.vidvrd import split_segments
    from tailgraph.structures import Segment

    fg = vocab.foreground_predicates
    pred_col = {vocab.predicates[p]: j for j, p in enumerate(fg)}
    cls_index = {c: i for i, c in enumerate(vocab.object_classes)}
    out = []
    from tailgraph.progress import track

    for vi, v in enumerate(track(videos, "tracklet features", unit="video")):
        cats = {t: cls_index[c] for t, c in v.extras.get("categories", {}).items()}
        segs = []
        for si, seg in enumerate(split_segments(v, length, stride)):
            rng = np.random.default_rng([seed, vi, si, 4242])
            tracklets, tracks = segment_tracklets(v, seg["begin"], seg["end"], source, jitter, rng)
            if not tracklets:
                continue
            active = active_instances(
                v.extras.get("relation_instances", []), seg["begin"], seg["end"], min_overlap
            )
            labels, pairs, targets, positive = assign_pairs(
                tracklets, tracks, active, pred_col, cats, pos_viou=pos_viou, neg_viou=neg_viou
            )
            if not training:
                n = len(tracklets)
                pairs = torch.tensor(
                    [(a, b) for a in range(n) for b in range(n) if a != b], dtype=torch.int64
                ).reshape(-1, 2)
                targets, positive = (
                    torch.zeros((pairs.shape[0], len(fg))),
                    torch.zeros(pairs.shape[0], dtype=torch.bool),
                )
            segs.append((seg, tracklets, labels, pairs, targets, positive))
        # per-frame RoI features of every tracklet box, one trunk pass per frame of the video
        frames_needed = sorted(
            {t.begin + k for _, trs, *_ in segs for t in trs for k in range(len(t.boxes))}
        )
        index = {f: i for i, f in enumerate(frames_needed)}
        boxes, frame_of = [], []
        for _, trs, *_ in segs:
            for t in trs:
                boxes.append(torch.tensor(t.boxes, dtype=torch.float32))
                frame_of.append(torch.arange(t.begin, t.end))
        feats_per_box = torch.zeros((0, extractor.out_dim))
        if boxes:
            all_boxes, all_frames = torch.cat(boxes), torch.cat(frame_of)
            frame_row = torch.tensor([index[int(f)] for f in all_frames], dtype=torch.int64)
            chunks = []
            for c in range(0, len(frames_needed), frame_batch):
                fr = frames_needed[c : c + frame_batch]
                imgs = [
                    load_image(v.frames[f].image_path, max_size, sample=v.frames[f].image_id)
                    for f in fr
                ]
                images = pad_images([t for t, _ in imgs])
                scales = torch.tensor([sc for _, sc in imgs], dtype=torch.float32)
                sel = frame_row - c
                mask = (sel >= 0) & (sel < len(fr))
                chunks.append((mask, extractor(images, scales, all_boxes[mask], sel[mask])))
            feats_per_box = torch.zeros((all_boxes.shape[0], extractor.out_dim))
            for mask, f in chunks:
                feats_per_box[mask] = f
        row = 0
        for seg, trs, labels, pairs, targets, positive in segs:
            tf = []
            for t in trs:
                tf.append(feats_per_box[row : row + len(t.boxes)].mean(0))
                row += len(t.boxes)
            out.append(
                Segment(
                    v.video_id,
                    seg["begin"],
                    seg["end"],
                    trs,
                    torch.stack(tf),
                    labels,
                    pairs,
                    targets,
                    positive,
                    pair_position(trs, pairs),
                )
            )
    return out


class VidVRDDataModule(SplitDataModule):
    """ImageNet-VidVRD (or synth-vrd) in 30-frame segments with a 15-frame stride (VidVRD-II).

    Args:
        segment_length, segment_stride: the segments (30 / 15).
        output: ``frames`` — each training batch is one segment's frames as a
            :class:`GraphBatch` (every frame carries the relation instances active in it, boxes
            carry their track ids) and each evaluation batch one whole video: what the engine
            trains and evaluates with the ``vidvrd`` protocol; ``segments`` — lists of segment
            dicts (``video_id``, ``begin``, ``end``, ``frames``, ``relation_instances`` clipped to
            the segment), ``batch_size`` per batch, for segment-level pipelines; ``tracklets`` —
            VidVRD-II's :class:`tailgraph.data.tracklets.SegmentBatch` es (``batch_size``
            segments each) with tracklet features, labelled candidate pairs for training and
            every ordered tracklet pair for evaluation (:func:`build_tracklet_segments`).
        max_size: frame size fed to a pixel model.
        layout_only: no frame images.
        num_workers, val_fraction: see :class:`SplitDataModule`.
        tracklets: ``gt`` | ``jittered`` (``output: tracklets``; see
            :func:`tailgraph.data.tracklets.segment_tracklets`), ``jitter`` its noise scale.
        feature_extractor: spec of the frozen per-box feature extractor (default
            :class:`tailgraph.modeling.tracklet_features.TrackletFeatureExtractor`); its
            ``out_dim`` must equal the model's ``feat_dim``.
        max_pairs, pos_viou, neg_viou, min_overlap: VidVRD-II's pair sampling (64, 0.9, 0.5)
            and when a relation instance counts for a segment (0.5).
        seed: tracklet-jitter seed.
        feature_cache: where the tracklet segments (features, pairs, targets) are kept between
            processes: ``auto`` = ``<root>/tracklet_cache/``, a folder, or ``None`` (memory
            only). A file is keyed by the split's videos, the settings and a checksum of the
            extractor's weights, so changed weights or settings rebuild it.

    With ``output: tracklets``, tracklet features are standardised with the training
    segments' per-dimension mean and standard deviation. Video-level ground truth for the metric
    comes from :meth:`eval_graphs` (whole videos with
    their relation instances).
    """

    protocol = "vidvrd"
    reader = "tailgraph.data.vidvrd:load_vidvrd"
    generator = "tailgraph.data.synthetic.vrd:generate_synth_vrd"
    marker = "train"

    def __init__(
        self,
        root: str = "data/synth-vrd",
        synth_train: int = 0,
        synth_test: int = 0,
        synth_size: int = 128,
        synth_seed: int = 0,
        segment_length: int = 30,
        segment_stride: int = 15,
        batch_size: int = 12,
        output: str = "frames",
        max_size: int = 128,
        layout_only: bool = True,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        tracklets: str = "gt",
        jitter: float = 0.05,
        feature_extractor: dict | None = None,
        max_pairs: int = 64,
        pos_viou: float = 0.9,
        neg_viou: float = 0.5,
        min_overlap: float = 0.5,
        seed: int = 0,
        synth_options: dict | None = None,
        feature_cache: str | None = "auto",
    ) -> None:
        super().__init__(
            root,
            synth_train,
            synth_test,
            synth_size,
            synth_seed,
            layout_only,
            num_workers,
            val_fraction,
            synth_options,
        )
        self.feature_cache = feature_cache
        if output not in ("frames", "segments", "tracklets"):
            raise DataError(
                f"output must be 'frames', 'segments' or 'tracklets', got {output!r}",
                field="output",
            )
        if output == "tracklets" and layout_only:
            raise DataError(
                "output 'tracklets' computes RoI features from the frames: set layout_only: false",
                field="layout_only",
            )
        from tailgraph.data.tracklets import TRACKLET_SOURCES

        if tracklets not in TRACKLET_SOURCES:
            raise DataError(
                f"tracklets must be one of {TRACKLET_SOURCES}, got {tracklets!r}", field="tracklets"
            )
        if max_pairs < 1:
            raise DataError(f"max_pairs must be positive, got {max_pairs}", field="max_pairs")
        self.length, self.stride, self.batch_size, self.output, self.max_size = (
            segment_length,
            segment_stride,
            batch_size,
            output,
            max_size,
        )
        self.tracklet_options = {
            "source": tracklets,
            "jitter": jitter,
            "seed": seed,
            "pos_viou": pos_viou,
            "neg_viou": neg_viou,
            "min_overlap": min_overlap,
        }
        self.feature_spec = feature_extractor or {
            "class_path": "tailgraph.modeling.tracklet_features.TrackletFeatureExtractor"
        }
        self.max_pairs = max_pairs
        self.segments: dict[str, list] = {}
        self.feature_mean: torch.Tensor | None = None
        self.feature_std: torch.Tensor | None = None

    @property
    def feature_dim(self) -> int:
        """Size of the tracklet features (``output: tracklets``)."""
        from tailgraph.components import build_component

        return int(build_component(self.feature_spec, {}).out_dim)

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.output != "tracklets" or self.segments:
            return
        import json

        from tailgraph.components import build_component

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # a randomly initialised extractor is the same in every run
            extractor = build_component(self.feature_spec, {})
        settings = json.dumps(
            {
                "spec": self.feature_spec,
                "len": self.length,
                "stride": self.stride,
                "size": self.max_size,
                **self.tracklet_options,
            },
            sort_keys=True,
            default=str,
        )
        import hashlib

        from tailgraph.datamodules.feature_cache import extractor_checksum

        weights = extractor_checksum(extractor)
        for split in ("train", "val", "test"):
            videos = self.splits.get(split) or []
            key = (
                str(Path(self.root).resolve()),
                split,
                tuple(v.video_id for v in videos),
                settings,
            )
            cache = None
            if self.feature_cache:
                digest = hashlib.sha256(
                    json.dumps([key[1:], weights], default=str).encode()
                ).hexdigest()[:16]
                folder = (
                    Path(self.root, "tracklet_cache")
                    if self.feature_cache == "auto"
                    else Path(self.feature_cache)
                )
                cache = folder / f"{split}-{digest}.pt"
            if key not in _SEGMENT_MEMO and cache is not None and cache.is_file():
                loaded = load_segments(cache)
                if loaded is not None:
                    _SEGMENT_MEMO[key] = loaded
            if key not in _SEGMENT_MEMO:
                _SEGMENT_MEMO[key] = build_tracklet_segments(
                    videos,
                    self.vocab,
                    extractor,
                    length=self.length,
                    stride=self.stride,
                    max_size=self.max_size,
                    training=split == "train",
                    **self.tracklet_options,
                )
                if cache is not None:
                    try:
                        save_segments(cache, _SEGMENT_MEMO[key])
                    except OSError as exc:  # e.g. a read-only data folder: keep them in memory
                        import warnings

                        warnings.warn(f"tracklet cache not written to {cache}: {exc}", stacklevel=2)
            self.segments[split] = _SEGMENT_MEMO[key]
        if not self.segments["train"]:
            raise DataError(
                "no training segment has a tracklet", file=str(self.root), field="train"
            )
        f = torch.cat([s.feats for s in self.segments["train"]])
        self.feature_mean, self.feature_std = f.mean(0), f.std(0).clamp_min(1e-6)

    def eval_graphs(self, split: str) -> list:
        """The whole videos of ``split`` (their relation instances are the metric's ground
        truth)."""
        return list(self.splits[split])

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if self.output == "tracklets":
            from tailgraph.structures import collate_segments

            ds = _TrackletSegments(
                self.segments[split],
                self.feature_mean,
                self.feature_std,
                self.max_pairs if split == "train" else None,
            )
            return DataLoader(
                ds,
                batch_size=self.batch_size,
                sampler=ShardSampler(len(ds), shuffle=shuffle, pad=split == "train"),
                collate_fn=collate_segments,
                num_workers=self.num_workers,
            )
        if self.output == "segments":
            segments = _Segments(self.splits[split], self.length, self.stride)
            return DataLoader(
                segments,
                batch_size=self.batch_size,
                sampler=ShardSampler(len(segments), shuffle=shuffle, pad=split == "train"),
                collate_fn=list,
                num_workers=self.num_workers,
            )
        ds = _SegmentFrames(
            self.splits[split],
            self.length if split == "train" else None,
            self.stride,
            self.max_size,
            self.layout_only,
        )
        return DataLoader(
            ds,
            batch_size=None,
            sampler=VideoSampler(len(ds), shuffle=shuffle, pad=split == "train"),
            num_workers=self.num_workers,
        )
