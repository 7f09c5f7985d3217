"""LightningDataModules for Open Images VRD (negative-mining batches) and ImageNet-VidVRD
(30-frame segments), real or synthetic (generated into ``root`` on first use when asked).
The VG150 / synth-vg modules are in :mod:`tailgraph.data.datamodule`, Action Genome's in
:mod:`tailgraph.engine.video_module`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from tailgraph.data.images import load_image
from tailgraph.data.samplers import AspectBinBatchSampler, resize_scale, sample_relation_pairs
from tailgraph.modeling.relation_model import GraphBatch
from tailgraph.structures import SceneGraph, VideoSceneGraph
from tailgraph.vocab import Vocabulary

__all__ = ["SplitDataModule", "OIDataModule", "VidVRDDataModule", "NegativeMiningCollate"]


class _OIImages(Dataset):
    def __init__(self, graphs: list[SceneGraph], shorter: int, longer_max: int, layout_only: bool) -> None:
        self.graphs, self.shorter, self.longer_max, self.layout_only = graphs, shorter, longer_max, layout_only

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
    """Zero-pad a batch of images and choose its relation pairs (all annotated pairs positive,
    unannotated ordered pairs negative, ≤ ``max_relations`` with 25–75 % positives)."""

    def __init__(self, max_relations: int = 400, min_pos: float = 0.25, max_pos: float = 0.75, seed: int = 0) -> None:
        self.max_relations, self.min_pos, self.max_pos = max_relations, min_pos, max_pos
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, items: list) -> GraphBatch:
        graphs = [g for _, _, g in items]
        chosen = sample_relation_pairs(graphs, self.max_relations, self.min_pos, self.max_pos, self.generator)
        pairs = [p for p, _ in chosen]
        if items[0][0] is None:
            return GraphBatch(graphs, pairs=pairs)
        h = max(t.shape[1] for t, _, _ in items)
        w = max(t.shape[2] for t, _, _ in items)
        images = torch.zeros((len(items), 3, h, w))
        for k, (t, _, _) in enumerate(items):
            images[k, :, : t.shape[1], : t.shape[2]] = t
        return GraphBatch(graphs, images, torch.tensor([s for _, s, _ in items], dtype=torch.float32), pairs)


class SplitDataModule(L.LightningDataModule):
    """Shared logic of the data modules: a ``train`` and a ``test`` split read by ``reader``,
    optionally generated first by ``generator`` (a synthetic variant) when ``marker`` is
    missing under ``root``. Subclasses implement ``_loader(split, shuffle)``.

    Args:
        root: data set folder.
        synth_train, synth_test, synth_size, synth_seed: synthetic generation (0 = never).
        layout_only: read without images.
    """

    reader = ""  # "module:function" taking (root, split, layout_only=...)
    generator = ""  # "module:function" taking (root, num_train=, num_test=, image_size=, seed=)
    marker = ""  # file or folder under root whose presence means "already generated"

    def __init__(self, root: str, synth_train: int = 0, synth_test: int = 0, synth_size: int = 128, synth_seed: int = 0,
                 layout_only: bool = False, num_workers: int = 0) -> None:
        super().__init__()
        self.root, self.layout_only, self.num_workers = root, layout_only, num_workers
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
            self._resolve(self.generator)(self.root, num_train=self.synth[0], num_test=self.synth[1], image_size=self.synth[2],
                                          seed=self.synth[3])

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()
        for split in ("train", "test"):
            if split not in self.splits:
                self.splits[split], vocab = self._resolve(self.reader)(self.root, split, layout_only=self.layout_only)
                if split == "train":
                    self.vocab = vocab

    def _loader(self, split: str, shuffle: bool) -> DataLoader:  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} must define _loader")

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class OIDataModule(SplitDataModule):
    """Open Images VRD (or synth-oi) with the negative-mining paper's batches.

    Args:
        root: data set folder.
        synth_train, synth_test, synth_size, synth_seed: generate synth-oi when ``root`` is empty.
        batch_size: images per batch (paper: 40), drawn from one aspect bin.
        max_relations: relation pairs per batch (paper: 400).
        shorter, longer_max: resizing (paper: 480 / 960).
        layout_only: no images.
    """

    reader = "tailgraph.data.openimages:load_oi"
    generator = "tailgraph.data.synthetic.oi:generate_synth_oi"
    marker = "class-descriptions.csv"

    def __init__(self, root: str = "data/synth-oi", synth_train: int = 0, synth_test: int = 0, synth_size: int = 192, synth_seed: int = 0,
                 batch_size: int = 40, max_relations: int = 400, shorter: int = 480, longer_max: int = 960, layout_only: bool = False,
                 num_workers: int = 0) -> None:
        super().__init__(root, synth_train, synth_test, synth_size, synth_seed, layout_only, num_workers)
        self.batch_size, self.max_relations, self.shorter, self.longer_max = batch_size, max_relations, shorter, longer_max

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        graphs = self.splits[split]
        ds = _OIImages(graphs, self.shorter, self.longer_max, self.layout_only)
        sampler = AspectBinBatchSampler([(g.width, g.height) for g in graphs], self.batch_size, shuffle=shuffle)
        collate = NegativeMiningCollate(self.max_relations) if split == "train" else NegativeMiningCollate(10**9, 0.0, 1.0)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers)



class _Segments(Dataset):
    def __init__(self, videos: list[VideoSceneGraph], length: int, stride: int) -> None:
        from tailgraph.data.vidvrd import split_segments

        self.items = [(v, seg) for v in videos for seg in split_segments(v, length, stride)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        v, seg = self.items[i]
        return {"video_id": v.video_id, "begin": seg["begin"], "end": seg["end"], "frames": v.frames[seg["begin"]:seg["end"]],
                "relation_instances": seg["relation_instances"]}


class VidVRDDataModule(SplitDataModule):
    """ImageNet-VidVRD (or synth-vrd) as 30-frame segments with a 15-frame stride (VidVRD-II).

    Batches are lists of segment dicts (``video_id``, ``begin``, ``end``, ``frames``,
    ``relation_instances`` clipped to the segment); the test loaders also expose whole videos
    through ``self.splits`` for video-level evaluation.
    """

    reader = "tailgraph.data.vidvrd:load_vidvrd"
    generator = "tailgraph.data.synthetic.vrd:generate_synth_vrd"
    marker = "train"

    def __init__(self, root: str = "data/synth-vrd", synth_train: int = 0, synth_test: int = 0, synth_size: int = 128, synth_seed: int = 0,
                 segment_length: int = 30, segment_stride: int = 15, batch_size: int = 12, layout_only: bool = True, num_workers: int = 0) -> None:
        super().__init__(root, synth_train, synth_test, synth_size, synth_seed, layout_only, num_workers)
        self.length, self.stride, self.batch_size = segment_length, segment_stride, batch_size

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(_Segments(self.splits[split], self.length, self.stride), batch_size=self.batch_size, shuffle=shuffle,
                          collate_fn=list, num_workers=self.num_workers)

