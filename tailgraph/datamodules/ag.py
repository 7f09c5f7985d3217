"""Action Genome (or synth-ag): one video's frames per batch."""

from __future__ import annotations

from torch.utils.data import DataLoader

from tailgraph.data.samplers import (
    VideoSampler,
)
from tailgraph.datamodules.base import SplitDataModule, VideoFrames
from tailgraph.errors import require_flag

__all__ = ["AGDataModule"]


class AGDataModule(SplitDataModule):
    """Action Genome (or synth-ag, generated on first use when ``synth_train`` > 0); one video
    per batch (all its frames).

    Args:
        root: data set folder.
        synth_train, synth_test, synth_size, synth_seed: generate synth-ag into ``root`` when
            it has no annotations.
        max_size: frame size fed to the network.
        layout_only: no frame images.
        num_workers, pin_memory, persistent_workers, val_fraction: see :class:`SplitDataModule`
            (validation videos are held out of the training videos).
        filter_small_box: read the ``..._filtersmall.pkl`` annotations (boxes with a short
            side > 16 px), as the reference does for SGCls and SGDet; the reference's
            ``-mode`` sets it (false for PredCls, true otherwise), here the recipe does.
        datasize: ``large`` | ``mini`` (the reference's ``-datasize``; ``mini`` keeps the
            first 80000 annotated frames).
        cache_frames: keep each video's decoded frames in memory after its first read, so
            later epochs do not decode them again (small sets: synth-ag 400 videos at 96 px
            hold ~0.4 GB; each loader worker keeps its own copy).
        contact_single_label: train the contacting type as one softmax over its 17 columns
            (a pair's one contact label) instead of independent sigmoids; not AG's protocol,
            an option for data whose pairs carry one contact label (97 % of synth-ag's).
    """

    protocol = "ag"
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
        contact_single_label: bool = False,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        cache_frames: bool = False,
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
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
        )
        require_flag("cache_frames", cache_frames)
        self.cache_frames = cache_frames
        self.max_size = max_size
        self.filter_small_box = filter_small_box
        self.datasize = datasize
        self.contact_single_label = contact_single_label

    def reader_options(self) -> dict:
        return {
            "filter_small_box": self.filter_small_box,
            "datasize": self.datasize,
            "contact_single_label": self.contact_single_label,
        }

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        pixels = self.train_pixels_flag() if split == "train" else None
        ds = VideoFrames(
            self.splits[split], self.max_size, self.layout_only, pixels, self.cache_frames
        )
        return DataLoader(
            ds,
            batch_size=None,
            sampler=VideoSampler(len(ds), shuffle=shuffle, pad=split == "train"),
            **self.loader_options(),
        )
