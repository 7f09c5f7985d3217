"""LightningDataModules for image scene graphs: VG150-format data and synth-vg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from tailgraph.data.images import GraphImageDataset, collate_graph_batch
from tailgraph.datamodules.base import SGGDataModule
from tailgraph.errors import DataError
from tailgraph.structures import SceneGraph
from tailgraph.vocab import Vocabulary

__all__ = ["VGDataModule", "SynthVGDataModule"]


class VGDataModule(SGGDataModule):
    protocol = "vg"  # targets, candidate pairs and metric: tailgraph.protocols.VGProtocol

    """A data set in the VG150 file format (real VG150, RS-VG style sets, synth-vg).

    Args:
        root: folder with ``VG-SGG-with-attri.h5`` (or ``VG-SGG.h5``), ``VG-SGG-dicts.json``,
            ``image_data.json`` and (unless layout-only) the images.
        layout_only: train on boxes, labels and relations only (no image files needed).
        max_size: longer image side fed to the network.
        batch_size: images per batch.
        num_workers: DataLoader workers.
        pin_memory: pin the batches' tensors (``None``: when training on CUDA).
        persistent_workers: keep the loader's workers between epochs (with ``num_workers``).
        num_val_im: images of the training split held out for validation, the first ones of
            split 0 as in Scene-Graph-Benchmark (which holds out 5000); ``None`` = 10 % of
            them, at most 5000; ``0`` = no validation. Validation never reads the test split.
        filter_non_overlap: drop training relations whose boxes do not overlap (SGDet-style
            training in SGB).
        cache_images: keep decoded images in memory (small sets).
        seed: seed of the duplicate-relation sampling of the training filter.
    """

    def __init__(
        self,
        root: str = "data/synth-vg",
        layout_only: bool = False,
        max_size: int = 192,
        batch_size: int = 8,
        num_workers: int = 0,
        num_val_im: int | None = None,
        filter_non_overlap: bool = False,
        cache_images: bool = True,
        seed: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
    ) -> None:
        super().__init__()
        self.root = str(root)
        self.layout_only = layout_only
        self.max_size = max_size
        self.batch_size = batch_size
        self.set_loader_options(num_workers, pin_memory, persistent_workers)
        self.num_val_im = num_val_im
        self.filter_non_overlap = filter_non_overlap
        self.cache_images = cache_images
        self.seed = seed
        self.vocab: Vocabulary | None = None
        self.splits: dict[str, list[SceneGraph]] = {}

    # ------------------------------------------------------------------ data
    def _num_val(self) -> int:
        from tailgraph.data.vg import default_num_val_im

        if self.num_val_im is None:
            self.num_val_im = default_num_val_im(self.root)
        if self.num_val_im < 0:
            raise DataError(
                f"num_val_im must be >= 0, got {self.num_val_im}",
                file=self.root,
                field="num_val_im",
            )
        return self.num_val_im

    def _load(self, split: str) -> list[SceneGraph]:
        from tailgraph.data.vg import load_vg

        if split not in self.splits:
            if split == "val" and self._num_val() == 0:
                self.splits[split] = []
                return []
            graphs, vocab = load_vg(
                self.root,
                split,
                layout_only=self.layout_only,
                num_val_im=self._num_val(),
                filter_non_overlap=self.filter_non_overlap and split == "train",
                seed=self.seed,
            )
            self.splits[split] = graphs
            if split == "train" or self.vocab is None:
                self.vocab = vocab
        return self.splits[split]

    def prepare_data(self) -> None:
        if not Path(self.root).is_dir():
            raise DataError("data set folder not found", file=self.root, field="root")

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()
        # The training split defines the vocabulary's counts (used by FREQ and the methods).
        self._load("train")
        if stage in (None, "fit", "validate"):
            self._load("val")
        if stage in (None, "test", "predict"):
            self._load("test")

    def train_graphs(self) -> list[SceneGraph]:
        """The training split's graphs (what the training statistics count)."""
        return self._load("train")

    def eval_graphs(self, split: str) -> list[SceneGraph]:
        """The ground truth of ``split`` (``val`` / ``test``) as its metric reads it."""
        return self._load(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = GraphImageDataset(
            self._load(split),
            max_size=self.max_size,
            layout_only=self.layout_only,
            cache_images=self.cache_images,
        )
        from tailgraph.data.samplers import ShardSampler

        return DataLoader(
            ds,
            batch_size=self.batch_size,
            # DDP-sharded here (the trainer's use_distributed_sampler is off): training shards
            # padded to equal length, evaluation shards disjoint and complete
            sampler=ShardSampler(len(ds), shuffle=shuffle, pad=split == "train"),
            collate_fn=collate_graph_batch,
            **self.loader_options(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        # no held-out images (num_val_im = 0): Lightning skips validation
        return self._loader("val", shuffle=False) if self._load("val") else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class SynthVGDataModule(VGDataModule):
    """synth-vg, generated into ``root`` on first use (deterministic per seed).

    Args:
        num_train, num_test: images per split.
        image_size: canvas size in pixels.
        synth_seed: generator seed.
        head_tail_ratio, max_units, max_objects, p_coarse, p_missing: generator options
            (:func:`tailgraph.data.synthetic.generate_synth_vg`).
        **kwargs: :class:`VGDataModule` options.
    """

    def __init__(
        self,
        root: str = "data/synth-vg",
        num_train: int = 2000,
        num_test: int = 500,
        image_size: int = 192,
        synth_seed: int = 0,
        head_tail_ratio: float = 1000.0,
        max_units: int = 4,
        max_objects: int = 10,
        p_coarse: float = 0.4,
        p_missing: float = 0.2,
        **kwargs,
    ) -> None:
        super().__init__(root=root, **kwargs)
        self.num_train = num_train
        self.num_test = num_test
        self.image_size = image_size
        self.synth_seed = synth_seed
        self.generator_options: dict[str, Any] = dict(
            head_tail_ratio=head_tail_ratio,
            max_units=max_units,
            max_objects=max_objects,
            p_coarse=p_coarse,
            p_missing=p_missing,
        )

    def prepare_data(self) -> None:
        from tailgraph.data.synthetic import generate_synth_vg

        marker = Path(self.root) / "VG-SGG-dicts.json"
        if not marker.is_file():
            from tailgraph.data.synthetic import generate_into

            generate_into(
                self.root,
                marker.name,
                lambda out: generate_synth_vg(
                    out,
                    num_train=self.num_train,
                    num_test=self.num_test,
                    seed=self.synth_seed,
                    image_size=self.image_size,
                    **self.generator_options,
                ),
            )
