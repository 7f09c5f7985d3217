import pytest
import torch

from tailgraph.datamodules.feature_cache import (
    CachedFeatures,
    build_cache,
    ensure_cache,
    extractor_checksum,
)
from tailgraph.errors import DataError
from tailgraph.modeling.roi import PixelFeatures
from tailgraph.structures import GraphBatch, SceneGraph


def batches():
    torch.manual_seed(1)
    gs = [
        SceneGraph(f"im{i}", 64, 48, [[0, 0, 20, 20], [10, 5, 60, 40]], [1, 2], [])
        for i in range(3)
    ]
    images = torch.randn(3, 3, 48, 64)
    return [
        GraphBatch(gs[:2], images[:2], torch.ones(2)),
        GraphBatch(gs[2:], images[2:], torch.ones(1)),
    ]


def test_cache_round_trip_and_staleness(tmp_path):
    torch.manual_seed(0)
    fx = PixelFeatures(last_stage="layer1", out_dim=8, frozen_trunk=True, union_features=False)
    path = tmp_path / "cache.h5"
    cache = ensure_cache(path, fx, batches(), {"max_size": 64})
    b = batches()[0]
    fx.eval()
    with torch.no_grad():
        direct, _ = fx(
            b.images,
            b.scales,
            torch.cat([g.boxes for g in b.graphs]),
            torch.tensor([0, 0, 1, 1]),
            torch.zeros((0, 2), dtype=torch.long),
        )
    assert torch.allclose(cache.features(b.graphs[1]), direct[2:4], atol=1e-6)
    assert "im2" in cache and "nope" not in cache
    cache.close()
    # other settings or other weights -> stale -> rebuilt
    with pytest.raises(DataError, match="stale"):
        CachedFeatures(path, extractor_checksum(fx, {"max_size": 128}))
    with torch.no_grad():
        fx.obj_head[-2].weight.add_(1.0)
    new_sum = extractor_checksum(fx, {"max_size": 64})
    with pytest.raises(DataError, match="stale"):
        CachedFeatures(path, new_sum)
    ensure_cache(path, fx, batches(), {"max_size": 64}).close()
    CachedFeatures(path, new_sum).close()
    # boxes changed -> refused
    moved = SceneGraph("im0", 64, 48, [[1, 0, 20, 20], [10, 5, 60, 40]], [1, 2], [])
    with pytest.raises(DataError, match="boxes differ"):
        CachedFeatures(path).features(moved)


def test_truncated_cache(tmp_path):
    fx = PixelFeatures(last_stage="layer1", out_dim=4, frozen_trunk=True, union_features=False)
    path = build_cache(tmp_path / "c.h5", fx, batches())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="corrupt or truncated"):
        CachedFeatures(path)
    assert not (tmp_path / "c.h5.tmp").exists()


def test_a_damaged_feature_value_is_an_error_not_another_feature(tmp_path):
    """Raw HDF5 data carry no checksum; the CRC-32 beside each image's features does."""
    import h5py

    fx = PixelFeatures(last_stage="layer1", out_dim=4, frozen_trunk=True, union_features=False)
    path = build_cache(tmp_path / "c.h5", fx, batches())
    with h5py.File(path, "r") as f:
        values = f["im1"]["features"][:]
    raw = bytearray(path.read_bytes())
    at = raw.index(values.tobytes())
    raw[at + 5] ^= 0x40  # one byte of im1's first feature
    path.write_bytes(bytes(raw))
    cache = CachedFeatures(path)
    assert cache.features(batches()[0].graphs[0]).shape == (2, 4)  # another image still reads
    with pytest.raises(DataError, match="checksum") as err:
        cache.features(batches()[0].graphs[1])
    assert err.value.sample == "im1" and err.value.file == str(path)
    cache.close()


def test_a_damaged_feature_shard_entry_is_an_error_naming_the_shard(tmp_path):
    import numpy as np

    from tailgraph.io.feature_shards import FeatureShards

    shards = FeatureShards(tmp_path / "s", flush_every=10)
    shards.put("k1", np.arange(64, dtype=np.float32))
    shards.put("k2", np.full(64, 7.0, dtype=np.float32))
    shards.flush()
    assert np.array_equal(FeatureShards(tmp_path / "s").get("k1"), np.arange(64))
    shard = next((tmp_path / "s").glob("shard_*.h5"))
    raw = bytearray(shard.read_bytes())
    raw[raw.index(np.full(64, 7.0, dtype=np.float32).tobytes()) + 2] ^= 0x01
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="checksum") as err:
        FeatureShards(tmp_path / "s")
    assert err.value.file == str(shard) and err.value.sample == "k2"
