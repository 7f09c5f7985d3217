"""BMP's and FReMuRe's formulas against hand-computed values (methods.md §1–2)."""

import math

import pytest
import torch
import torch.nn.functional as F

from tailgraph.methods.bmp import (
    balance_prototypes,
    gaussian_kl,
    minority_focal_loss,
    minority_sample_counts,
)
from tailgraph.methods.fremure import FrequencyGate, frequency_correction


def _bce(s, y):
    q = 1 / (1 + math.exp(-s))
    return -(y * math.log(q) + (1 - y) * math.log(1 - q))


def test_minority_focal_loss_by_hand():
    s = torch.tensor([[0.0, 2.0, -1.0]])
    y = torch.tensor([[1.0, 1.0, 0.0]])
    minority = torch.tensor([False, True, True])
    q = [0.5, 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1))]
    terms = [
        (1 - q[0]) ** 1 * _bce(0.0, 1),  # majority: gamma 1
        (1 - q[1]) ** 0.5 * _bce(2.0, 1),  # minority positive
        (q[2]) ** 2.0 * _bce(-1.0, 0),
    ]  # minority negative: 1 - q_t = q
    assert float(minority_focal_loss(s, y, minority)) == pytest.approx(sum(terms) / 3, rel=1e-6)
    # all majority, gamma 1 everywhere
    all_major = torch.zeros(3, dtype=torch.bool)
    expect = (
        sum(
            (1 - (qq if yy else 1 - qq)) * _bce(ss, yy)
            for qq, yy, ss in zip(q, [1, 1, 0], [0.0, 2.0, -1.0])
        )
        / 3
    )
    assert float(minority_focal_loss(s, y, all_major)) == pytest.approx(expect, rel=1e-6)
    # the released code's prototype-probability factor: minority exponents times pp
    pp = torch.tensor([[0.9, 0.2, 0.5]])
    scaled = [
        (1 - q[0]) ** 1 * _bce(0.0, 1),  # majority: untouched by pp
        (1 - q[1]) ** (0.5 * 0.2) * _bce(2.0, 1),
        (q[2]) ** (2.0 * 0.5) * _bce(-1.0, 0),
    ]
    got = minority_focal_loss(s, y, minority, 0.5, 2.0, prototype_prob=pp)
    assert float(got) == pytest.approx(sum(scaled) / 3, rel=1e-6)
    # pp is a constant of the loss (no gradient flows into the prototypes through it)
    pp_leaf = pp.clone().requires_grad_(True)
    s_leaf = s.clone().requires_grad_(True)
    minority_focal_loss(s_leaf, y, minority, prototype_prob=pp_leaf).backward()
    assert pp_leaf.grad is None and s_leaf.grad is not None


def test_gaussian_kl_by_hand_and_broadcasting():
    mu_p, lv_p = torch.tensor([0.0, 1.0]), torch.tensor([0.0, math.log(4.0)])
    mu_q, lv_q = torch.tensor([1.0, 1.0]), torch.tensor([math.log(2.0), 0.0])
    # d0: log(2/1) + 1/2 + 1/2 - 1 ; d1: log(1/4) + 4/1 + 0 - 1
    expect = 0.5 * ((math.log(2) + 0.5 + 0.5 - 1) + (math.log(0.25) + 4 - 1))
    assert float(gaussian_kl(mu_p, lv_p, mu_q, lv_q)) == pytest.approx(expect, rel=1e-6)
    assert float(gaussian_kl(mu_p, lv_p, mu_p, lv_p)) == pytest.approx(0.0, abs=1e-7)
    assert gaussian_kl(
        torch.zeros(3, 1, 2), torch.zeros(3, 1, 2), torch.zeros(1, 4, 2), torch.zeros(1, 4, 2)
    ).shape == (3, 4)


def test_balance_prototypes_one_round_by_hand():
    # 1-d prototypes, unit variance: KL = (mu_j - mu_i)^2 / 2
    mu = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    lv = torch.zeros(4, 1)
    counts = [0, 100, 50, 10]  # class 0 is the minority
    minority = torch.tensor([True, False, False, False])
    out_mu, out_lv = balance_prototypes(mu, lv, counts, minority, q=2, alpha=0.1, nstage=1)
    # nearest two majority: classes 1 (KL 0.5) and 2 (KL 4.5); w ∝ KL * N = 50, 225
    w1, w2 = 50 / 275, 225 / 275
    assert float(out_mu[0]) == pytest.approx(0.9 * 0.0 + 0.1 * (w1 * 1.0 + w2 * 3.0), rel=1e-6)
    assert torch.equal(out_mu[1:], mu[1:]) and torch.equal(out_lv, lv)
    # two rounds recompute KL from the moved prototype
    m1 = float(out_mu[0])
    k1, k2 = (1 - m1) ** 2 / 2 * 100, (3 - m1) ** 2 / 2 * 50
    two, _ = balance_prototypes(mu, lv, counts, minority, q=2, alpha=0.1, nstage=2)
    assert float(two[0]) == pytest.approx(
        0.9 * m1 + 0.1 * (k1 * 1.0 + k2 * 3.0) / (k1 + k2), rel=1e-6
    )


def test_balance_prototypes_takes_every_majority_class_when_fewer_than_q():
    mu = torch.tensor([[0.0], [0.5], [2.0]])
    lv = torch.tensor([[0.0], [0.0], [math.log(2.0)]])
    minority = torch.tensor([True, True, False])  # one majority class: q = 3 takes it alone
    out_mu, out_lv = balance_prototypes(mu, lv, [1, 2, 30], minority, q=3, alpha=0.5, nstage=1)
    assert out_mu[:, 0].tolist() == pytest.approx([1.0, 1.25, 2.0])
    assert out_lv[:2, 0].tolist() == pytest.approx([0.5 * math.log(2.0)] * 2)


def test_minority_sample_counts_by_hand():
    k = minority_sample_counts([10, 0, 30, 5], [2, 3, 1, 1], [True, True, False, True], tau_maj=20)
    # (20-10)/10*2 = 2 ; N=0 -> 0 ; majority -> 0 ; (20-5)/5*1 = 3
    assert k.tolist() == [2, 0, 0, 3]
    assert minority_sample_counts([7], [1], [True], 20).tolist() == [1]  # floor(13/7)


def test_frequency_correction_by_hand():
    x = torch.tensor([[1.0, 3.0]])
    ln = torch.tensor([[-1.0, 1.0]]) * (1 / math.sqrt(1 + 1e-5))
    out = frequency_correction(x, torch.tensor([0.25, 1.0]))
    assert out.tolist()[0] == pytest.approx(
        [0.25 * ln[0, 0].item() + 0.75 * 1.0, ln[0, 1].item()], rel=1e-6
    )
    assert torch.allclose(frequency_correction(x, torch.tensor(0.0)), x)
    assert torch.allclose(
        frequency_correction(x, torch.tensor(1.0)), F.layer_norm(x, (2,), eps=1e-5)
    )


def test_frequency_gate_eq2():
    gate = FrequencyGate([1, 3, 0], dim=2, eps=1e-6)
    f = torch.tensor([0.25, 0.75, 0.0])
    assert torch.allclose(gate.frequencies, f)
    feat = torch.log(1 / (f + 1e-6) + 1e-6)
    assert torch.allclose(gate(), torch.sigmoid(gate.linear(feat)))
    assert gate().shape == (2,) and ((gate() > 0) & (gate() < 1)).all()
