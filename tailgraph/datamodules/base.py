"""The data modules' common ground: :class:`SGGDataModule`, the interface the engine reads
(vocabulary, protocol, training and evaluation graphs), and :class:`SplitDataModule`, a data
set's ``train`` / ``test`` splits read (or generated first) through the table of data kinds.

The data modules of each kind are in their own modules: :mod:`tailgraph.datamodules.vg`
(VG150, synth-vg), :mod:`~tailgraph.datamodules.ag` (Action Genome),
:mod:`~tailgraph.datamodules.oi` (Open Images VRD) and :mod:`~tailgraph.datamodules.vidvrd`
(ImageNet-VidVRD). Validation uses samples held out of the training split (``val_fraction``,
the first ones in file order), never the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from tailgraph.data.images import load_image, pad_images
from tailgraph.errors import DataError, require_flag
from tailgraph.protocols import data_kind
from tailgraph.structures import GraphBatch, VideoSceneGraph
from tailgraph.vocab import Vocabulary

__all__ = ["SGGDataModule", "SplitDataModule", "VideoFrames"]


class SGGDataModule(L.LightningDataModule):
    """What the engine reads from a data module.

    Attributes:
        protocol: the data kind (a name of :data:`tailgraph.protocols.DATA_KINDS`), which
            selects the engine's protocol.
        vocab: the data set's vocabulary, set by ``setup``.
        max_size: the longer image side the network sees, or ``None`` (layout-only data).
    """

    protocol = ""
    vocab: Vocabulary | None = None
    max_size: Any = None  # int in the image and video modules
    num_workers: int = 0
    pin_memory: bool | None = None
    persistent_workers: bool = True

    def set_loader_options(
        self, num_workers: int, pin_memory: bool | None, persistent_workers: bool
    ) -> None:
        """Check and keep the options every split's ``DataLoader`` is built with
        (:meth:`loader_options`)."""
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise DataError(
                f"num_workers must be an integer >= 0, got {num_workers!r}", field="num_workers"
            )
        require_flag("pin_memory", pin_memory, optional=True)
        require_flag("persistent_workers", persistent_workers)
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers

    def pins_memory(self) -> bool:
        """Whether the loaders pin their batches: ``pin_memory`` when set, otherwise only when
        the attached trainer runs on a CUDA device (pinned host memory lets the copy to the
        device overlap the step; on CPU it is only a cost)."""
        if self.pin_memory is not None:
            return self.pin_memory
        trainer = getattr(self, "trainer", None)
        device = getattr(getattr(trainer, "strategy", None), "root_device", None)
        return isinstance(device, torch.device) and device.type == "cuda"

    def set_train_pixels(self, needed: bool) -> None:
        """Whether this epoch's training batches must carry pixels (the engine passes the
        method's :meth:`~tailgraph.methods.base.Method.uses_pixels`). A training set that can
        leave them out (video frames: :class:`VideoFrames`) then yields graphs only; the flag
        lives in shared memory, so persistent loader workers see it too. Evaluation loaders
        always decode."""
        self.train_pixels_flag()[0] = bool(needed)

    def train_pixels_flag(self) -> torch.Tensor:
        """The shared one-element flag :meth:`set_train_pixels` writes (true at first)."""
        flag = getattr(self, "_train_pixels", None)
        if flag is None:
            flag = self._train_pixels = torch.ones(1, dtype=torch.bool).share_memory_()
        return flag

    def loader_options(self) -> dict[str, Any]:
        """The ``DataLoader`` keyword arguments shared by every split of every data kind:
        ``num_workers`` worker processes, kept alive between epochs (``persistent_workers``,
        when there are workers) and pinned memory (:meth:`pins_memory`)."""
        return {
            "num_workers": self.num_workers,
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
            "pin_memory": self.pins_memory(),
        }

    def train_graphs(self) -> list:
        """The training split's images / frames (what the training statistics count)."""
        raise NotImplementedError

    def eval_graphs(self, split: str) -> list | None:
        """The ground truth of ``split`` as its metric reads it, or ``None`` when the metric
        takes it from the batches."""
        return None


class SplitDataModule(SGGDataModule):
    """Shared logic of the data modules: a ``train`` and a ``test`` split read by the data
    kind's reader (:data:`tailgraph.protocols.DATA_KINDS`), optionally generated first by its
    synthetic generator when ``marker`` is missing under ``root``. Subclasses set
    ``protocol`` (the data kind) and ``marker`` and implement ``_loader(split, shuffle)``.

    Args:
        root: data set folder.
        synth_train, synth_test, synth_size, synth_seed: synthetic generation (0 = never).
        layout_only: read without images.
        num_workers: DataLoader workers.
        val_fraction: fraction of the training samples (the first ones) held out for
            validation; 0 = no validation.
        synth_options: further options of the synthetic generator (e.g. ``head_tail_ratio``).
        pin_memory: pin the batches' tensors (``None``: when training on CUDA).
        persistent_workers: keep the loader's workers between epochs (with ``num_workers``).
    """

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
        *,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
    ) -> None:
        super().__init__()
        self.set_loader_options(num_workers, pin_memory, persistent_workers)
        self.synth_options = dict(synth_options or {})
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(
                f"val_fraction must be in [0, 1), got {val_fraction}", field="val_fraction"
            )
        self.root, self.layout_only, self.val_fraction = root, layout_only, val_fraction
        self.synth = (synth_train, synth_test, synth_size, synth_seed)
        self.vocab: Vocabulary | None = None
        self.splits: dict[str, list] = {}

    def prepare_data(self) -> None:
        if not self.synth[0]:
            return
        from tailgraph.data.synthetic import check_synth_record, generate_into, write_synth_record

        settings = {
            "num_train": self.synth[0],
            "num_test": self.synth[1],
            "image_size": self.synth[2],
            "seed": self.synth[3],
            **self.synth_options,
        }
        if (Path(self.root) / self.marker).exists():
            # a generated root is reused only with the settings it was generated with
            check_synth_record(self.root, settings)
            return

        def build(out):
            info = data_kind(self.protocol).generate(out, **settings)
            write_synth_record(out, settings)
            return info

        generate_into(self.root, self.marker, build)

    def setup(self, stage: str | None = None) -> None:
        if not Path(self.root).exists() and not self.synth[0]:
            raise DataError("data set folder not found", file=str(self.root), field="root")
        self.prepare_data()
        for split in ("train", "test"):
            if split not in self.splits:
                self.splits[split], vocab = data_kind(self.protocol).reader(
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


class VideoFrames(Dataset):
    """One item per video: a :class:`GraphBatch` of its frames (and their pixels).

    ``pixels``: an optional shared flag (:meth:`SGGDataModule.train_pixels_flag`); while it is
    false the items carry graphs only, as with ``layout_only``. ``cache_frames``: keep each
    video's decoded, padded frames after its first read (memory grows with the set: small sets
    only; each loader worker keeps its own)."""

    def __init__(
        self,
        videos: list[VideoSceneGraph],
        max_size: int,
        layout_only: bool,
        pixels: torch.Tensor | None = None,
        cache_frames: bool = False,
    ) -> None:
        self.videos, self.max_size, self.layout_only = videos, max_size, layout_only
        self.pixels = pixels
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = (
            {} if cache_frames else None
        )

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> GraphBatch:
        v = self.videos[i]
        if self.layout_only or (self.pixels is not None and not bool(self.pixels[0])):
            return GraphBatch(list(v.frames))
        got = self.cache.get(i) if self.cache is not None else None
        if got is None:
            imgs = [load_image(f.image_path, self.max_size, sample=f.image_id) for f in v.frames]  # type: ignore[arg-type]
            got = (
                pad_images([t for t, _ in imgs]),
                torch.tensor([s for _, s in imgs], dtype=torch.float32),
            )
            if self.cache is not None:
                self.cache[i] = got
        return GraphBatch(list(v.frames), got[0], got[1])
