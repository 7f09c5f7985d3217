"""CachedTrunkFeatures: the frozen trunk's maps computed once, outputs equal to the pixel path
with the same frozen trunk, shards on disk keyed by the trunk's weights."""

import torch

from tailgraph.modeling.roi import CachedTrunkFeatures, PixelFeatures


def _pair(tmp_path=None):
    torch.manual_seed(0)
    opts = {"last_stage": "layer1", "out_dim": 16, "union_maps": True}
    pixel = PixelFeatures(frozen_trunk=True, **opts)
    cached = CachedTrunkFeatures(cache_dir=None if tmp_path is None else str(tmp_path), **opts)
    cached.load_state_dict(pixel.state_dict())
    return pixel, cached


def _inputs():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 64, 64, generator=g)
    boxes = torch.tensor([[2.0, 2, 30, 30], [10, 10, 60, 50], [0, 0, 63, 63], [5, 20, 25, 60]])
    obj_to_img = torch.tensor([0, 0, 1, 2])
    pairs = torch.tensor([[0, 1], [1, 0]])
    return images, torch.ones(3), boxes, obj_to_img, pairs


def test_outputs_equal_the_frozen_pixel_path_on_misses_and_hits():
    pixel, cached = _pair()
    pixel.train(), cached.train()
    x = _inputs()
    want_obj, want_union = pixel(*x)
    for _ in range(2):  # first call computes the maps, the second reads them
        obj, union = cached(*x)
        assert torch.allclose(obj, want_obj, atol=1e-5) and torch.allclose(
            union, want_union, atol=1e-5
        )
    assert cached.misses == 3 and cached.hits == 3
    # the heads above the trunk still train; the trunk does not
    obj.sum().backward()
    assert cached.obj_head[0].weight.grad is not None
    assert all(p.grad is None for p in cached.trunk.parameters())


def test_shards_on_disk_are_read_back_and_keyed_by_the_trunk_weights(tmp_path):
    pixel, cached = _pair(tmp_path)
    x = _inputs()
    want = pixel(*x)[0]
    cached(*x)
    cached._cache().flush()
    shards = list(tmp_path.glob("*/shard_*.h5"))
    assert len(shards) == 1
    _, again = _pair(tmp_path)  # a new process would see the same folder
    assert torch.allclose(again(*x)[0], want, atol=1e-5)
    assert again.misses == 0 and again.hits == 3
    with torch.no_grad():  # other trunk weights: another folder, nothing read
        next(again.trunk.parameters()).add_(1.0)
    again.load_state_dict(again.state_dict())
    again.misses = again.hits = 0
    again(*x)
    assert again.misses == 3
    again._cache().flush()
    assert len({p.parent for p in tmp_path.glob("*/shard_*.h5")}) == 2


def test_a_frozen_trunk_is_the_same_function_in_any_mode():
    """A frozen trunk's BatchNorm keeps its statistics whatever its modules' flags say (a
    trainer may restore modes by flag, not through ``train()``): the map in training equals the
    map at test, and the running statistics never move."""
    from tailgraph.modeling.backbone import ResNetTrunk

    torch.manual_seed(0)
    t = ResNetTrunk(18, last_stage="layer1", frozen=True)
    for m in t.modules():
        m.training = True  # as a trainer restoring the freshly built modules' flags
    before = {k: v.clone() for k, v in t.state_dict().items()}
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        train_map = t(x)
        t.eval()
        test_map = t(x)
    assert torch.equal(train_map, test_map)
    assert all(torch.equal(before[k], v) for k, v in t.state_dict().items())
