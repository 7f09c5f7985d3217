import math

import pytest
import torch
import torch.nn.functional as F

from tailgraph.modeling.context.vidvrd_ii import TrackletPairModel, relative_motion_feature


def test_relative_motion_feature_by_hand():
    sub = torch.tensor([[0.0, 0.0, 20.0, 10.0]])  # centre (10, 5), w 20, h 10
    obj = torch.tensor([[30.0, 0.0, 40.0, 20.0]])  # centre (35, 10), w 10, h 20
    f = relative_motion_feature(
        sub,
        obj,
        sub + 5,
        obj,
        (torch.tensor([3]), torch.tensor([29])),
        (torch.tensor([0]), torch.tensor([29])),
    )
    start = [(10 - 35) / 10, (5 - 10) / 20, math.log(2), math.log(0.5), 0.0, 3 / 30]
    end = [(15 - 35) / 10, (10 - 10) / 20, math.log(2), math.log(0.5), 0.0, 0.0]
    assert f[0].tolist() == pytest.approx(start + end, abs=1e-6)


def test_model_contract_refinement_and_learning():
    torch.manual_seed(0)
    m = TrackletPairModel(feat_dim=8, num_classes=4, num_predicates=5, hidden_dim=16, dropout=0.0)
    feats = torch.randn(4, 8)
    pairs = torch.tensor([[0, 1], [2, 3], [1, 0]])
    pos = torch.randn(3, 12)
    out = m(feats, pairs, pos)
    # zero preference tables: refinement leaves the base distributions unchanged
    assert torch.allclose(out["pred_probs"], torch.sigmoid(out["predicate"].logits))
    assert torch.allclose(out["sub_probs"], torch.softmax(out["object_logits"][pairs[:, 0]], 1))
    idx, scores = TrackletPairModel.triplet_scores(out, k=7)
    assert idx.shape == (3, 7, 3) and (scores[:, :-1] >= scores[:, 1:]).all()
    s, p, o = idx[0, 0].tolist()
    expect = out["sub_probs"][0, s] * out["pred_probs"][0, p] * out["obj_probs"][0, o]
    assert torch.allclose(scores[0, 0], expect) and s >= 1 and o >= 1
    # learns a tiny multi-label task; the preference tables receive gradients
    target = torch.zeros(3, 5)
    target[0, 1] = target[1, 3] = target[2, 1] = 1
    labels = torch.tensor([1, 2, 3, 1])
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(100):
        out = m(feats, pairs, pos)
        loss = F.binary_cross_entropy(out["pred_probs"], target) + F.cross_entropy(
            out["object_logits"], labels
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m.so2p.grad is not None and m.so2p.grad.abs().sum() > 0
    assert ((out["pred_probs"] > 0.5).float() == target).all()
