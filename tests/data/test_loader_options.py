"""Every data kind builds its loaders with the same worker, persistence and pinning options."""

from types import SimpleNamespace

import pytest
import torch

from tailgraph.datamodules.ag import AGDataModule
from tailgraph.datamodules.oi import OIDataModule
from tailgraph.datamodules.vg import SynthVGDataModule
from tailgraph.datamodules.vidvrd import VidVRDDataModule
from tailgraph.errors import DataError
from tailgraph.structures import GraphBatch


def _modules(tmp_path, **opts):
    return {
        "vg": SynthVGDataModule(
            root=str(tmp_path / "vg"), num_train=12, num_test=4, image_size=64, max_size=64,
            batch_size=4, **opts,
        ),
        "ag": AGDataModule(
            root=str(tmp_path / "ag"), synth_train=3, synth_test=1, synth_size=64, max_size=64,
            val_fraction=0.0, **opts,
        ),
        "oi": OIDataModule(
            root=str(tmp_path / "oi"), synth_train=12, synth_test=4, synth_size=64, batch_size=4,
            shorter=64, longer_max=128, val_fraction=0.0, **opts,
        ),
        "vidvrd": VidVRDDataModule(
            root=str(tmp_path / "vrd"), synth_train=3, synth_test=1, val_fraction=0.0, **opts
        ),
    }  # fmt: skip


def _content(batch) -> list:
    """What a batch holds, comparable across processes (GraphBatch: boxes, labels, pixels)."""
    if isinstance(batch, GraphBatch):
        out = [(g.image_id, g.boxes.tolist(), g.labels.tolist()) for g in batch.graphs]
        return out + ([] if batch.images is None else [float(batch.images.double().sum())])
    return [repr(batch)]


def test_worker_loaders_give_the_batches_of_the_main_process(tmp_path):
    plain = _modules(tmp_path)
    workers = _modules(tmp_path, num_workers=1, persistent_workers=False)
    for kind, dm in plain.items():
        dm.setup("fit")
        loader = dm.train_dataloader()
        assert (loader.num_workers, loader.persistent_workers, loader.pin_memory) == (
            0,
            False,
            False,
        ), kind
        other = workers[kind]
        other.setup("fit")
        wl = other.train_dataloader()
        assert (wl.num_workers, wl.persistent_workers) == (1, False), kind
        torch.manual_seed(0)
        a = [_content(b) for b in loader]
        torch.manual_seed(0)
        b = [_content(b) for b in wl]
        assert a and a == b, kind


def test_persistent_workers_and_pinning_reach_every_loader(tmp_path):
    for kind, dm in _modules(tmp_path, num_workers=2, pin_memory=True).items():
        dm.setup("fit")
        for loader in (dm.train_dataloader(), dm.test_dataloader()):
            assert loader.num_workers == 2 and loader.persistent_workers, kind
            assert loader.pin_memory, kind


def test_pinning_follows_the_trainers_device_unless_set(tmp_path):
    dm = _modules(tmp_path)["ag"]
    assert dm.pins_memory() is False  # no trainer attached
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)))
    assert dm.pins_memory() is True
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")))
    assert dm.pins_memory() is False
    dm.pin_memory = False
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)))
    assert dm.pins_memory() is False


@pytest.mark.parametrize(
    "opts, field",
    [
        ({"num_workers": -1}, "num_workers"),
        ({"num_workers": True}, "num_workers"),
        ({"num_workers": 1.5}, "num_workers"),
        ({"pin_memory": "yes"}, "pin_memory"),
        ({"pin_memory": 1}, "pin_memory"),
        ({"persistent_workers": None}, "persistent_workers"),
    ],
)
def test_loader_options_are_checked(tmp_path, opts, field):
    for make in (
        lambda: AGDataModule(root=str(tmp_path / "ag"), **opts),
        lambda: SynthVGDataModule(root=str(tmp_path / "vg"), **opts),
    ):
        with pytest.raises(DataError) as err:
            make()
        assert err.value.field == field


def test_a_pinned_batch_copies_its_pixels_only():
    images = torch.rand(2, 3, 8, 8)
    batch = GraphBatch([], images, torch.ones(2))
    pinned = []
    real = torch.Tensor.pin_memory

    def fake_pin(t):  # CPU-only machines cannot pin; record what would be pinned
        pinned.append(t)
        return t.clone()

    torch.Tensor.pin_memory = fake_pin  # type: ignore[method-assign]
    try:
        out = batch.pin_memory()
    finally:
        torch.Tensor.pin_memory = real  # type: ignore[method-assign]
    assert len(pinned) == 1 and pinned[0] is images
    assert torch.equal(out.images, images) and out.scales is batch.scales
    assert GraphBatch([]).pin_memory().images is None


@pytest.mark.parametrize("kind", ["ag", "vidvrd"])
def test_persistent_workers_see_the_training_pixel_flag(tmp_path, kind):
    if kind == "ag":
        dm = _modules(tmp_path, num_workers=1)["ag"]
    else:  # frame-level VidVRD with pixels
        dm = VidVRDDataModule(
            root=str(tmp_path / "vrd"), synth_train=3, synth_test=1, synth_size=64, max_size=64,
            layout_only=False, val_fraction=0.0, num_workers=1,
        )  # fmt: skip
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.persistent_workers
    assert all(b.images is not None for b in loader)
    dm.set_train_pixels(False)  # the same workers, the next epoch
    assert all(b.images is None and b.graphs for b in loader)
    assert all(b.images is not None for b in dm.test_dataloader())  # evaluation decodes
    dm.set_train_pixels(True)
    assert all(b.images is not None for b in loader)


def test_cached_video_frames_equal_decoded_ones_and_are_read_once(tmp_path, monkeypatch):
    import tailgraph.datamodules.base as base

    plain = _modules(tmp_path)["ag"]
    cached = AGDataModule(
        root=str(tmp_path / "ag"), synth_train=3, synth_test=1, synth_size=64, max_size=64,
        val_fraction=0.0, cache_frames=True,
    )  # fmt: skip
    for dm in (plain, cached):
        dm.setup("fit")
    reads = []
    real = base.load_image
    monkeypatch.setattr(base, "load_image", lambda *a, **k: reads.append(1) or real(*a, **k))
    want = {b.graphs[0].image_id: b.images for b in plain.train_dataloader()}
    n_frames = len(reads)
    reads.clear()
    loader = cached.train_dataloader()
    for _ in range(3):  # three epochs: the frames are decoded in the first only
        for b in loader:
            assert torch.equal(b.images, want[b.graphs[0].image_id])
    assert len(reads) == n_frames > 0
    with pytest.raises(DataError) as err:
        AGDataModule(root=str(tmp_path / "ag"), cache_frames="yes")
    assert err.value.field == "cache_frames"
