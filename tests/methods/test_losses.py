"""Losses against hand computation."""

import math

import pytest
import torch

from tailgraph.losses import ClassBalancedCE, class_balanced_weights, cross_entropy, focal_loss


def test_class_balanced_weights_by_hand():
    w = class_balanced_weights([0, 1, 2, 10], beta=0.9)
    # (1 - 0.9) / (1 - 0.9 ** n); 0 where n == 0
    assert w.tolist() == pytest.approx([0.0, 1.0, 0.1 / 0.19, 0.1 / (1 - 0.9**10)], rel=1e-6)
    assert class_balanced_weights([3, 5], beta=0.0).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        class_balanced_weights([1], beta=1.0)


def test_focal_loss_by_hand_and_reduces_to_ce():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    p0 = math.exp(2) / (math.exp(2) + 1)
    want = (-((1 - p0) ** 2) * math.log(p0) - (0.5**2) * math.log(0.5)) / 2
    assert focal_loss(logits, labels, gamma=2.0).item() == pytest.approx(want, rel=1e-6)
    assert focal_loss(logits, labels, gamma=0.0).item() == pytest.approx(
        cross_entropy(logits, labels).item(), rel=1e-6
    )
    assert focal_loss(logits, torch.tensor([-100, -100])).item() == 0.0


def test_class_balanced_ce_weights_and_background():
    loss = ClassBalancedCE([0, 10, 1], beta=0.9)
    raw = class_balanced_weights([0, 10, 1], 0.9)
    fg = raw[1:] / raw[1:].mean()
    assert loss.weight.tolist() == pytest.approx([1.0, *fg.tolist()], rel=1e-6)
    logits = torch.zeros(2, 3)
    # weighted mean: sum_i w_yi * log 3 / sum_i w_yi = log 3
    assert loss(logits, torch.tensor([1, 2])).item() == pytest.approx(math.log(3), rel=1e-6)
