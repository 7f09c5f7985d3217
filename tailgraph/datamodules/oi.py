"""Open Images VRD (or synth-oi): balanced negative-mining batches of annotated box pairs."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from tailgraph.data.images import load_image, pad_images
from tailgraph.data.samplers import (
    AspectBinBatchSampler,
    resize_scale,
    sample_relation_pairs,
)
from tailgraph.datamodules.base import SplitDataModule
from tailgraph.errors import DataError
from tailgraph.structures import GraphBatch, SceneGraph

__all__ = ["OIDataModule", "NegativeMiningCollate"]


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
        img, s = load_image(g.image_path, round(max(g.width, g.height) * scale), sample=g.image_id)  # type: ignore[arg-type]
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
        num_workers, pin_memory, persistent_workers, val_fraction, synth_options: see
            :class:`SplitDataModule`.
        seed: pair-sampling seed.

    Evaluation batches score every ordered pair of annotated boxes (the OI protocol).
    """

    protocol = "oi"
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
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, **self.loader_options())
