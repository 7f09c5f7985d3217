"""ImageNet-VidVRD (or synth-vrd) in 30-frame segments (VidVRD-II): frames, segment dicts or
tracklet segments with features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from tailgraph.data.samplers import (
    ShardSampler,
    VideoSampler,
)
from tailgraph.datamodules.base import SplitDataModule, VideoFrames
from tailgraph.datamodules.tracklet_segments import (
    build_tracklet_segments,
    load_segments,
    save_segments,
)
from tailgraph.errors import DataError, require_flag
from tailgraph.structures import GraphBatch, VideoSceneGraph

__all__ = ["VidVRDDataModule", "build_extractor"]


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
        pixels: torch.Tensor | None = None,
    ) -> None:
        from tailgraph.data.vidvrd import split_segments

        self.frames = VideoFrames(videos, max_size, layout_only, pixels)
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
        f = self.frames
        return VideoFrames([part], f.max_size, f.layout_only, f.pixels)[0]


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
        num_workers, pin_memory, persistent_workers, val_fraction: see :class:`SplitDataModule`.
        tracklets: ``gt`` | ``jittered`` | ``tracked`` | a user tracklet file ``*.json`` in
            VidVRD's trajectory layout (:func:`tailgraph.data.tracklets.read_tracklet_file`)
            (``output: tracklets``; see
            :func:`tailgraph.data.tracklets.segment_tracklets`), ``jitter`` its noise scale.
        tracker_matching, tracker_by_class: how the IoU tracker links detections (``tracklets:
            tracked`` and ``tailgraph predict --boxes``): ``optimal`` (Hungarian) or ``greedy``
            assignment; link only boxes of one class (default) or of any class
            (:func:`tailgraph.ops.tracks.link_detections`).
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
        tracker_matching: str = "optimal",
        tracker_by_class: bool = True,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
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
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
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
        from tailgraph.data.tracklets import TRACKLET_SOURCES, is_tracklet_file

        if tracklets not in TRACKLET_SOURCES and not is_tracklet_file(tracklets):
            raise DataError(
                f"tracklets must be one of {TRACKLET_SOURCES} or a tracklet file (.json), "
                f"got {tracklets!r}",
                field="tracklets",
            )
        if is_tracklet_file(tracklets) and not Path(tracklets).is_file():
            raise DataError("tracklet file not found", file=tracklets, field="tracklets")
        from tailgraph.ops.tracks import LINK_MATCHING

        if tracker_matching not in LINK_MATCHING:
            raise DataError(
                f"tracker_matching must be one of {LINK_MATCHING}, got {tracker_matching!r}",
                field="tracker_matching",
            )
        require_flag("tracker_by_class", tracker_by_class)
        if max_pairs < 1:
            raise DataError(f"max_pairs must be positive, got {max_pairs}", field="max_pairs")
        self.length, self.stride, self.batch_size, self.output, self.max_size = (
            segment_length,
            segment_stride,
            batch_size,
            output,
            max_size,
        )
        self.tracklet_options: dict[str, Any] = {
            "source": tracklets,
            "jitter": jitter,
            "seed": seed,
            "pos_viou": pos_viou,
            "neg_viou": neg_viou,
            "min_overlap": min_overlap,
            "tracker_matching": tracker_matching,
            "tracker_by_class": tracker_by_class,
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

        from tailgraph.data.tracklets import is_tracklet_file

        extractor = build_extractor(self.feature_spec)
        settings = json.dumps(
            {
                "spec": self.feature_spec,
                "len": self.length,
                "stride": self.stride,
                "size": self.max_size,
                **self.tracklet_options,
                # a user tracklet file's content is part of the key
                **(
                    {"source_digest": _digest(self.tracklet_options["source"])}
                    if is_tracklet_file(self.tracklet_options["source"])
                    else {}
                ),
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
            segments = load_segments(cache) if cache is not None and cache.is_file() else None
            if segments is None:
                segments = build_tracklet_segments(
                    videos,
                    self.vocab,  # type: ignore[arg-type]
                    extractor,
                    length=self.length,
                    stride=self.stride,
                    max_size=self.max_size,
                    training=split == "train",
                    **self.tracklet_options,
                )
                if cache is not None:
                    try:
                        save_segments(cache, segments)
                    except OSError as exc:  # e.g. a read-only data folder: keep them in memory
                        import warnings

                        warnings.warn(f"tracklet cache not written to {cache}: {exc}", stacklevel=2)
            self.segments[split] = segments
        if not self.segments["train"]:
            raise DataError(
                "no training segment has a tracklet", file=str(self.root), field="train"
            )
        f = torch.cat([s.feats for s in self.segments["train"]])
        self.feature_mean, self.feature_std = f.mean(0), f.std(0).clamp_min(1e-6)

    def predict_settings(self) -> dict[str, Any] | None:
        """What ``tailgraph predict`` needs to rebuild this module's tracklet segments for new
        videos (kept in the checkpoint): segment length / stride, frame size, the feature
        extractor's spec and the training features' mean and standard deviation; ``None``
        unless ``output: tracklets`` and set up."""
        if self.output != "tracklets" or self.feature_mean is None or self.feature_std is None:
            return None
        return {
            "segment_length": int(self.length),
            "segment_stride": int(self.stride),
            "max_size": int(self.max_size),
            "feature_extractor": self.feature_spec,
            "feature_mean": self.feature_mean.detach().cpu().clone(),
            "feature_std": self.feature_std.detach().cpu().clone(),
            "tracker_matching": self.tracklet_options["tracker_matching"],
            "tracker_by_class": self.tracklet_options["tracker_by_class"],
        }

    def eval_graphs(self, split: str) -> list:
        """The whole videos of ``split`` (their relation instances are the metric's ground
        truth)."""
        return list(self.splits[split])

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if self.output == "tracklets":
            from tailgraph.structures import collate_segments

            ds = _TrackletSegments(
                self.segments[split],
                self.feature_mean,  # type: ignore[arg-type]
                self.feature_std,  # type: ignore[arg-type]
                self.max_pairs if split == "train" else None,
            )
            # evaluation shards hold whole videos: the metric associates a video's segments
            videos = [s.video_id for s in self.segments[split]]
            return DataLoader(
                ds,
                batch_size=self.batch_size,
                sampler=ShardSampler(len(ds), shuffle=shuffle, pad=split == "train", groups=videos),
                collate_fn=collate_segments,
                **self.loader_options(),
            )
        if self.output == "segments":
            segments = _Segments(self.splits[split], self.length, self.stride)
            return DataLoader(
                segments,
                batch_size=self.batch_size,
                sampler=ShardSampler(
                    len(segments),
                    shuffle=shuffle,
                    pad=split == "train",
                    groups=[v.video_id for v, _ in segments.items],
                ),
                collate_fn=list,
                **self.loader_options(),
            )
        ds = _SegmentFrames(  # type: ignore[assignment]
            self.splits[split],
            self.length if split == "train" else None,
            self.stride,
            self.max_size,
            self.layout_only,
            self.train_pixels_flag() if split == "train" else None,
        )
        return DataLoader(
            ds,
            batch_size=None,
            sampler=VideoSampler(len(ds), shuffle=shuffle, pad=split == "train"),
            **self.loader_options(),
        )


def build_extractor(spec: dict) -> Any:
    """The frozen per-box feature extractor of ``spec``; a randomly initialised one is the same
    in every run (built under seed 0 without touching the global random state)."""
    from tailgraph.components import build_component

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_component(spec, {})


def _digest(path: str) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
