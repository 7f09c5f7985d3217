import pytest
import torch
import torch.nn.functional as F

from tailgraph.modeling.negmining import NegativeMiningNet, coordconv_maps


def test_coordconv_maps_by_hand():
    union = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    sub = torch.tensor([[0.0, 0.0, 5.0, 20.0]])
    obj = torch.tensor([[5.0, 10.0, 10.0, 20.0]])
    m = coordconv_maps(sub, obj, union, 2)
    assert m.shape == (1, 6, 2, 2)
    # subject x samples at 1.25 and 3.75 of a 10-wide union
    assert m[0, 0].tolist() == [[0.125, 0.375], [0.125, 0.375]]
    # subject y samples at 5 and 15 of a 20-high union
    assert m[0, 1].tolist() == [[0.25, 0.25], [0.75, 0.75]]
    # object x at 6.25, 8.75; y at 12.5, 17.5
    assert m[0, 2, 0].tolist() == [0.625, 0.875] and m[0, 3, :, 0].tolist() == [0.625, 0.875]
    # the union's own maps are the plain grid
    assert m[0, 4, 0].tolist() == [0.25, 0.75]


@pytest.mark.parametrize(
    "flags", [dict(), dict(use_coordconv=False), dict(use_embeddings=False), dict(use_visual=False)]
)
def test_shapes_gradients_and_ablations(flags):
    torch.manual_seed(0)
    net = NegativeMiningNet(
        num_classes=5, num_predicates=4, roi_size=3, visual_dim=32, embed_dim=8, **flags
    )
    boxes = torch.tensor([[0, 0, 40, 40], [30, 10, 90, 60], [10, 50, 60, 90.0]])
    pairs = torch.tensor([[0, 1], [1, 0], [2, 1]])
    logits = net(
        torch.randn(1, 3, 96, 96),
        torch.ones(1),
        boxes,
        torch.zeros(3, dtype=torch.long),
        torch.tensor([1, 2, 3]),
        pairs,
    )
    assert logits.shape == (3, 4)
    F.cross_entropy(logits, torch.tensor([1, 0, 2])).backward()
    if flags.get("use_visual", True):
        assert net.stage1[0][0].weight.grad.abs().sum() > 0
    if flags.get("use_embeddings", True):
        assert net.sub_embed.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        NegativeMiningNet(5, 4, use_visual=False, use_embeddings=False)


def test_learns_relative_position_from_coordconv_alone():
    """Same classes and uniform images: only the geometry (CoordConv) tells 'left' from 'right'."""
    torch.manual_seed(0)
    net = NegativeMiningNet(num_classes=3, num_predicates=3, roi_size=3, visual_dim=16, embed_dim=4)
    images = torch.zeros(1, 3, 64, 64)
    boxes = torch.tensor([[2, 20, 18, 36], [40, 20, 56, 36], [22, 2, 38, 18.0]])
    pairs = torch.tensor([[0, 1], [1, 0], [2, 0], [0, 2]])
    target = torch.tensor([1, 2, 0, 0])  # 1 = left of, 2 = right of, 0 = no relation
    labels = torch.tensor([1, 1, 1])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(60):
        loss = F.cross_entropy(
            net(images, torch.ones(1), boxes, torch.zeros(3, dtype=torch.long), labels, pairs),
            target,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    pred = net(
        images, torch.ones(1), boxes, torch.zeros(3, dtype=torch.long), labels, pairs
    ).argmax(1)
    assert pred.tolist() == target.tolist()
