"""DLL's formulas against hand-computed values (methods.md §3)."""

import math

import pytest
import torch

from tailgraph.methods.dll import (
    DLL,
    DecoupledHead,
    PatternMap,
    grad_reverse,
    header_predicates,
    kl_divergence,
    mutual_calibration,
    non_target,
)


def _map():
    # k0: act0 + spa0, k1: act1 only, k2: spa1 only, k3: act0 + spa1; act2 is used by no predicate
    return PatternMap([0, 1, -1, 0], [0, -1, 1, 1], num_action=3, num_spatial=2)


def test_grad_reverse_identity_forward_negated_backward():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 2.0, -1.0])
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.5 * w)


def test_pattern_map_and_inverse_by_hand():
    m = _map()
    a, s = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0])
    p = m.to_predicates(a, s)
    assert p.tolist() == pytest.approx([5.5, 2.0, 20.0, 10.5])
    a2, s2 = m.to_patterns(p)
    # act0 = mean(k0, k3), act1 = k1, act2 unused -> 0; spa0 = k0, spa1 = mean(k2, k3)
    assert a2.tolist() == pytest.approx([8.0, 2.0, 0.0])
    assert s2.tolist() == pytest.approx([5.5, 15.25])
    # batched
    assert m.to_predicates(a.expand(4, 3), s.expand(4, 2)).shape == (4, 4)


def test_pattern_map_refuses_predicates_without_a_pattern_and_bad_indices():
    with pytest.raises(ValueError, match="neither"):
        PatternMap([0, -1], [0, -1], 1, 1)
    with pytest.raises(ValueError, match="range"):
        PatternMap([0, 2], [0, 0], 2, 1)


def test_pattern_map_from_vocabulary_names():
    m, acts, spas = PatternMap.from_names(
        ["fly", None, "walk", "fly"], ["above", "left", None, None]
    )
    assert acts == ["fly", "walk"] and spas == ["above", "left"]
    assert m.predicate_action.tolist() == [0, -1, 1, 0] and m.predicate_spatial.tolist() == [
        0,
        1,
        -1,
        -1,
    ]


def test_mutual_calibration_one_and_two_steps_by_hand():
    m = _map()
    a, s = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0])
    a1, s1 = mutual_calibration(a, s, m, eta=0.5, steps=1)
    # the unused pattern act2 keeps its own value 3
    assert a1.tolist() == pytest.approx([4.5, 2.0, 3.0])
    assert s1.tolist() == pytest.approx([7.75, 17.625])
    a2, s2 = mutual_calibration(a, s, m, eta=0.5, steps=2)
    assert a2.tolist() == pytest.approx([6.546875, 2.0, 3.0])
    assert s2.tolist() == pytest.approx([6.9375, 15.984375])
    a0, s0 = mutual_calibration(a, s, m, eta=0.5, steps=0)
    assert torch.equal(a0, a) and torch.equal(s0, s)


def test_non_target_by_hand():
    p = torch.tensor([0.2, 0.3, 0.5])
    assert non_target(p, 1).tolist() == pytest.approx([2 / 7, 0.0, 5 / 7])
    rows = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    out = non_target(rows, torch.tensor([2, 0]))
    assert out.tolist() == [pytest.approx([0.4, 0.6, 0.0]), pytest.approx([0.0, 0.5, 0.5])]


def test_header_predicates_share_a_pattern_most_frequent():
    # k0 ~ {k0, k3}; k1 ~ {k1}; k2 ~ {k2, k3}; k3 ~ {k0, k2, k3}
    assert header_predicates(_map(), [5, 100, 7, 3]).tolist() == [0, 1, 2, 2]
    assert header_predicates(_map(), [4, 1, 4, 4]).tolist() == [0, 1, 2, 0]  # ties: lower index


def _dll(p=3, header=(1, 1, 1)):
    d = DLL(pdl=False, transfer_mask="target")  # Eq. 11 as printed; the hand values assume it
    d.correlation = torch.nn.Parameter(torch.zeros(p, p))  # softmax rows = uniform 1/3
    d.header = torch.tensor(header)
    return d


def test_kdl_losses_by_hand_and_their_gradient_blocking():
    d = _dll()
    probs = torch.tensor([[0.2, 0.3, 0.5]], requires_grad=True)
    targets = torch.tensor([[0.0, 0.0, 1.0]])
    l_cm, l_nt = d.kdl_losses(probs, targets)
    l_cm_value, l_nt_value = float(l_cm.detach()), float(l_nt.detach())
    # p_non = [0.4, 0.6, 0]; m_k = m_h = [0.5, 0.5, 0]
    assert l_cm_value == pytest.approx(
        0.5 * math.log(0.5 / 0.4) + 0.5 * math.log(0.5 / 0.6), rel=1e-5
    )
    assert l_nt_value == pytest.approx(
        0.4 * math.log(0.4 / 0.5) + 0.6 * math.log(0.6 / 0.5), rel=1e-5
    )
    # L_cm updates only M, L_nt only the model
    g_p, g_m = torch.autograd.grad(l_cm, [probs, d.correlation], allow_unused=True)
    assert g_p is None and g_m.abs().sum() > 0
    g_p, g_m = torch.autograd.grad(l_nt, [probs, d.correlation], allow_unused=True)
    assert g_m is None and g_p.abs().sum() > 0


def test_kdl_losses_average_over_every_ground_truth_position():
    d = _dll(header=(0, 1, 2))
    probs = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    targets = torch.tensor(
        [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    )  # two positions in row 0, none in row 1
    l_cm, _ = d.kdl_losses(probs, targets)
    m = torch.full((3,), 1 / 3)
    expect = [kl_divergence(non_target(m, k), non_target(probs[0], k)) for k in (0, 2)]
    assert float(l_cm) == pytest.approx(float(sum(expect) / 2), rel=1e-5)


def test_correlation_starts_near_identity():
    from types import SimpleNamespace

    from tailgraph.modeling.segment_model import VidVRD2Model
    from tailgraph.vocab import Vocabulary

    vocab = Vocabulary(
        ["__background__", "a", "b"],
        ["__background__", "fly_above", "left", "chase"],
        predicate_counts=[0, 3, 9, 1],
        action_pattern=[None, "fly", None, "chase"],
        spatial_pattern=[None, "above", "left", None],
    )
    model = VidVRD2Model(
        feat_dim=4,
        num_classes=3,
        num_predicates=4,
        hidden_dim=8,
        predicate_counts=[0, 3, 9, 1],
        action_pattern=vocab.action_pattern,
        spatial_pattern=vocab.spatial_pattern,
    )
    d = DLL(pdl=False)
    d.setup(model, vocab, SimpleNamespace(predicate_counts=[0, 3, 9, 1]))
    m = torch.softmax(d.correlation, -1)
    assert torch.allclose(torch.diagonal(m), torch.full((3,), 0.999), atol=1e-6)
    assert d.header.tolist() == [0, 1, 2]  # fly_above shares no pattern with left / chase
    with pytest.raises(ValueError, match="DecoupledHead"):
        DLL(pdl=True).setup(model, vocab, None)


def test_alpha_and_gamma_schedules():
    d = DLL(alpha=0.1, beta=0.01, alpha_hold_epochs=1, gamma_decay=0.9)
    d.on_train_epoch_start(None, 0)
    for step in range(1, 6):
        d.on_after_optimizer_step(None, step)
    assert d.alpha() == pytest.approx(0.1)
    d.on_train_epoch_start(None, 1)
    d.on_after_optimizer_step(None, 8)  # three iterations after the hold ended at step 5
    assert d.alpha() == pytest.approx(0.1 + 0.01 * 3)
    d.alpha_growth = "recurrence"
    assert d.alpha() == pytest.approx(0.1 + 0.01 * (1 + 2 + 3))
    d.alpha_max = 0.12
    assert d.alpha() == pytest.approx(0.12)
    d.on_train_epoch_start(None, 3)
    assert d.gamma() == pytest.approx(0.9**3)


def _head():
    torch.manual_seed(0)
    return DecoupledHead(
        in_dim=6,
        num_predicates=4,
        predicate_action=["x", "y", None, "x"],
        predicate_spatial=["u", None, "v", "v"],
        hidden_dim=16,
        mc_steps=1,
        eta=0.1,
    )


def test_decoupled_head_couples_calibrated_patterns():
    head = _head()
    f = torch.randn(3, 6)
    out = head(f)
    a, s = head.classify_a(head.d_a(f)), head.classify_s(head.d_s(f))
    a, s = mutual_calibration(a, s, head.pattern_map, 0.1, 1)
    assert torch.allclose(out["logits"], head.pattern_map.to_predicates(a, s))
    assert out["logits"].shape == (3, 4)


def test_decouplers_receive_reversed_gradients_and_opposite_networks_do_not():
    f = torch.randn(7, 6, generator=torch.Generator().manual_seed(3))

    def grads(coeff):
        head = _head()
        head.grl_coeff = coeff
        loss = head.adversarial_loss(head(f))
        params = {n: p for n, p in head.named_parameters()}
        g = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        return {n: x for n, x in zip(params, g)}

    rev, plain = grads(1.0), grads(-1.0)  # coeff −1 reverses the reversal: ordinary gradients
    d_names = [n for n in rev if n.startswith(("d_a.", "d_s."))]
    n_names = [n for n in rev if n.startswith(("n_s2a.", "n_a2s."))]
    assert d_names and n_names
    for n in d_names:
        assert plain[n] is not None and plain[n].abs().sum() > 0
        assert torch.allclose(rev[n], -plain[n], atol=1e-7), n
    for n in n_names:
        assert plain[n].abs().sum() > 0
        assert torch.allclose(rev[n], plain[n], atol=1e-7), n
    # Algorithm 1 updates only D and N with L_r: the pattern classifiers are fixed functions there
    for n in ("classify_a.weight", "classify_a.bias", "classify_s.weight", "classify_s.bias"):
        assert rev[n] is None or float(rev[n].abs().sum()) == 0.0, n


def test_adversarial_loss_applies_the_pattern_classifiers_as_they_are():
    """L_r is computed with the classifiers' current weights (only their gradient is cut)."""
    head = _head()
    out = head(torch.randn(5, 6, generator=torch.Generator().manual_seed(1)))
    f_s2a, f_a2s = head.n_s2a(out["f_s"]), head.n_a2s(out["f_a"])
    p_a, p_s = (
        torch.softmax(head.classify_a(out["f_a"]), -1),
        torch.softmax(head.classify_s(out["f_s"]), -1),
    )
    q_a, q_s = torch.softmax(head.classify_a(f_s2a), -1), torch.softmax(head.classify_s(f_a2s), -1)
    want = (
        (q_a * (q_a.log() - p_a.log())).sum(-1) + (q_s * (q_s.log() - p_s.log())).sum(-1)
    ).mean()
    assert float(head.adversarial_loss(out)) == pytest.approx(float(want), rel=1e-5)


def test_transfer_mask_defaults_to_target_and_header():
    from tailgraph.methods.dll import DLL

    assert DLL().transfer_mask == "target_and_header"


def test_decoupled_head_needs_pattern_metadata():
    with pytest.raises(ValueError, match="pattern metadata"):
        DecoupledHead(in_dim=4, num_predicates=3, predicate_action=["x"], predicate_spatial=[None])


def test_transfer_mask_target_and_header_drops_the_headers_own_entry():
    d = _dll()  # uniform M rows, header of every predicate = 1
    d.transfer_mask = "target_and_header"
    probs = torch.tensor([[0.2, 0.3, 0.5]])
    targets = torch.tensor([[0.0, 0.0, 1.0]])
    _, l_nt = d.kdl_losses(probs, targets)
    # positions k = 2 and h = 1 masked on both sides: [1, 0, 0] vs [1, 0, 0]
    assert float(l_nt.detach()) == pytest.approx(0.0, abs=1e-6)
    d2 = _dll(header=(2, 1, 2))  # k = 2 is its own header: only k is masked
    d2.transfer_mask = "target_and_header"
    _, l_plain = _dll(header=(2, 1, 2)).kdl_losses(probs, targets)
    _, l_same = d2.kdl_losses(probs, targets)
    assert float(l_same.detach()) == pytest.approx(float(l_plain.detach()))
    with pytest.raises(ValueError, match="transfer_mask"):
        DLL(transfer_mask="both")


def test_nontarget_logits_is_a_softmax_over_the_other_logits_and_only_reshapes():
    p = 5
    d = _dll(p=p, header=(0,) * p)  # uniform M rows; the header of every predicate is 0
    logits = torch.tensor([[2.0, 1.0, -1.0, -3.0, 0.5]], requires_grad=True)
    targets = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]])
    d.nontarget = "logits"
    _, l_nt = d.kdl_losses(torch.sigmoid(logits), targets, logits)
    z = logits.detach()[0, :4]
    p_non = torch.softmax(z, -1)
    m_h = torch.full((4,), 1 / 4)
    assert float(l_nt) == pytest.approx(float(kl_divergence(p_non, m_h)), rel=1e-5)
    (g_soft,) = torch.autograd.grad(l_nt, logits)
    assert g_soft[0, 4] == 0 and abs(float(g_soft.sum())) < 1e-6  # level-neutral in logits
    assert g_soft[0, 0] > 0 > g_soft[0, 3]  # flattening: the largest down, the smallest up
    d.nontarget = "probabilities"  # the printed form also moves the row's logits as a whole
    _, l_prob = d.kdl_losses(torch.sigmoid(logits), targets)
    (g_prob,) = torch.autograd.grad(l_prob, logits)
    assert abs(float(g_prob.sum())) > 1e-2
    with pytest.raises(ValueError, match="needs the logits"):
        d.nontarget = "logits"
        d.kdl_losses(torch.sigmoid(logits), targets)
    with pytest.raises(ValueError, match="nontarget"):
        DLL(nontarget="softmax")


def test_transfer_temperature_sharpens_the_headers_row():
    d = _dll(p=4, header=(0, 0, 0, 0))
    d.correlation = torch.nn.Parameter(torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 4)))
    probs = torch.tensor([[0.2, 0.3, 0.5, 0.9]])
    targets = torch.tensor([[0.0, 0.0, 0.0, 1.0]])  # k = 3; m_non^h = [0.1, 0.2, 0.3] / 0.6
    _, l_plain = d.kdl_losses(probs, targets)
    d.transfer_temperature = 0.5  # squares the row: [0.01, 0.04, 0.09] / 0.14
    _, l_sharp = d.kdl_losses(probs, targets)
    p_non = torch.tensor([0.2, 0.3, 0.5])
    sharp = torch.tensor([0.01, 0.04, 0.09]) / 0.14
    assert float(l_sharp) == pytest.approx(float(kl_divergence(p_non, sharp)), rel=1e-5)
    assert float(l_plain) == pytest.approx(
        float(kl_divergence(p_non, torch.tensor([1.0, 2.0, 3.0]) / 6)), rel=1e-5
    )
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="transfer_temperature"):
            DLL(transfer_temperature=bad)


def test_transfer_on_misranked_pulls_only_samples_another_predicate_outranks():
    d = _dll(p=4, header=(0, 0, 0, 0))
    d.correlation = torch.nn.Parameter(torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 4)))
    # row 0: target 3 ranked first (0.9 > 0.5); row 1: target 3 outranked by predicate 2;
    # row 2: two targets, 1 and 3 — 3 is first, 1 (0.3) is outranked by 2 (0.6)
    probs = torch.tensor([[0.2, 0.3, 0.5, 0.9], [0.2, 0.3, 0.8, 0.4], [0.1, 0.3, 0.6, 0.7]])
    targets = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    _, l_all = d.kdl_losses(probs, targets)
    d.transfer_on = "misranked"
    _, l_mis = d.kdl_losses(probs, targets)
    rows, ks = targets.nonzero(as_tuple=True)  # positions (0,3) (1,3) (2,1) (2,3)
    m = torch.softmax(d.correlation, -1)
    per = kl_divergence(non_target(probs[rows], ks), non_target(m[d.header[ks]], ks))
    assert float(l_all) == pytest.approx(float(per.mean()), rel=1e-5)
    assert float(l_mis) == pytest.approx(float((per[1] + per[2]) / 4), rel=1e-5)
    with pytest.raises(ValueError, match="transfer_on"):
        DLL(transfer_on="wrong")
