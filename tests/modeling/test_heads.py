"""Predicate heads: each head's math against a hand computation on tiny tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from tailgraph.modeling.heads.bayesian import BayesianHead
from tailgraph.modeling.heads.gmm import GMMHead
from tailgraph.modeling.heads.gmm_plus import GMMPlusHead
from tailgraph.modeling.heads.linear import LinearHead
from tailgraph.modeling.heads.prototype import PrototypeHead, gaussian_log_likelihood


def softmax(v):
    e = [math.exp(a) for a in v]
    return [a / sum(e) for a in e]


def sig(a):
    return 1 / (1 + math.exp(-a))


def set_linear(layer, weight, bias):
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32).view_as(layer.weight))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def gmm_fixture():
    head = GMMHead(in_dim=1, num_predicates=2, num_components=2, act="softmax")
    set_linear(
        head.mean, [[1.0], [0.0], [0.0], [2.0]], [0, 0, 0, 0]
    )  # mu_1 = [1, 0], mu_2 = [0, 2] at x = 1
    set_linear(head.mix, [[0.0], [0.0]], [0.0, math.log(3.0)])  # pi = [.25, .75]
    set_linear(head.var, [[0.0]] * 4, [0.0] * 4)  # v = sigmoid(0) = .5
    return head


def test_gmm_eval_uncertainty_and_loss_by_hand():
    head = gmm_fixture().eval()
    out = head(torch.ones(1, 1))
    s1, s2 = softmax([1, 0]), softmax([0, 2])
    p = [0.25 * a + 0.75 * b for a, b in zip(s1, s2)]
    assert out.probs[0].tolist() == pytest.approx(p, abs=1e-6)
    assert out.extras["pi"][0].tolist() == pytest.approx([0.25, 0.75])
    assert out.extras["aleatoric"][0].tolist() == pytest.approx([0.5, 0.5])
    ep = [0.25 * (a - m) ** 2 + 0.75 * (b - m) ** 2 for a, b, m in zip(s1, s2, p)]
    assert out.extras["epistemic"][0].tolist() == pytest.approx(ep, abs=1e-6)
    # cross-entropy on the head's logits is TEMPURA's NLL on log(p + 1e-12)
    ce = F.cross_entropy(out.logits, torch.tensor([1]))
    assert ce.item() == pytest.approx(-math.log(p[1] + 1e-12), abs=1e-6)


def test_gmm_training_sample_by_hand():
    head = gmm_fixture().train()
    eps = torch.tensor([[[1.0, -1.0]], [[0.5, 0.0]]])  # [K, P, C]
    out = head(torch.ones(1, 1), eps=eps)
    r = math.sqrt(0.5)
    z1, z2 = [1 + r, 0 - r], [0 + 0.5 * r, 2]
    p = [0.25 * a + 0.75 * b for a, b in zip(softmax(z1), softmax(z2))]
    assert out.probs[0].tolist() == pytest.approx(p, abs=1e-6)


def test_gmm_sigmoid_logits_give_bce_on_p():
    head = GMMHead(3, 4, 2, act="sigmoid").eval()
    out = head(torch.randn(5, 3))
    y = (torch.rand(5, 4) > 0.5).float()
    assert F.binary_cross_entropy_with_logits(out.logits, y).item() == pytest.approx(
        F.binary_cross_entropy(out.probs, y).item(), abs=1e-5
    )


def test_bayesian_by_hand():
    head = BayesianHead(1, 2, num_samples=2, act="softmax")
    set_linear(head.mu, [[1.0], [0.0]], [0.0, 0.0])
    set_linear(head.log_var, [[0.0], [0.0]], [math.log(0.25), math.log(0.25)])  # sigma = .5
    head.eval()
    out = head(torch.ones(1, 1))
    assert out.probs[0].tolist() == pytest.approx(softmax([1, 0]), abs=1e-6)
    assert out.extras["aleatoric"][0].tolist() == pytest.approx([0.25, 0.25], abs=1e-6)
    q = softmax([1, 0])
    assert out.extras["epistemic"][0].item() == pytest.approx(
        -sum(a * math.log(a) for a in q), abs=1e-6
    )
    head.train()
    eps = torch.tensor([[[1.0, 0.0]], [[-1.0, 2.0]]])  # [S, P, C]
    out = head(torch.ones(1, 1), eps=eps)
    p = [(a + b) / 2 for a, b in zip(softmax([1.5, 0.0]), softmax([0.5, 1.0]))]
    assert out.probs[0].tolist() == pytest.approx(p, abs=1e-6)


def test_gmm_plus_code_variant_by_hand_and_variance_regularizer():
    head = GMMPlusHead(
        1,
        2,
        num_components=2,
        act="sigmoid",
        var_min=1e-3,
        var_max=5.0,
        var_floor=0.05,
        predicate_counts=[100, 1],
        variant="code",
    )
    set_linear(head.mean, [[1.0], [0.0], [-1.0], [2.0]], [0.0] * 4)  # mu_1 = [1, 0], mu_2 = [-1, 2]
    set_linear(
        head.spread, [[0.0]] * 4, [-20.0, 0.0, 0.0, 0.0]
    )  # var: clamp(softplus(-20)) = var_min; softplus(0) = ln 2
    set_linear(
        head.mix, [[0.0]] * 4, [0.0, 0.0, math.log(3.0), 0.0]
    )  # class 0: pi = [.25, .75]; class 1: [.5, .5]
    head.eval()
    out = head(torch.ones(1, 1))
    p0 = 0.25 * sig(1) + 0.75 * sig(-1)
    p1 = 0.5 * sig(0) + 0.5 * sig(2)
    assert out.probs[0].tolist() == pytest.approx([p0, p1], abs=1e-6)
    var = out.extras["var"][:, 0, :]
    assert var[0, 0].item() == pytest.approx(1e-3) and var[0, 1].item() == pytest.approx(
        math.log(2) + 1e-6, abs=1e-6
    )
    # only (k=0, class 0) is below the floor; class weights 1/100 and 1/1 normalised to mean 1
    w0 = (1 / 100) / ((1 / 100 + 1) / 2)
    expected = w0 * (math.log(0.05) - math.log(1e-3)) / 4
    assert head.variance_regularizer(out).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="predicate_counts"):
        GMMPlusHead(1, 3, predicate_counts=[1, 2])


def test_gmm_plus_eq6_is_a_mixture_density_over_the_embedding_by_hand():
    """variant paper: log p(z|c) = logsumexp_k[log π_kc + log N(z; μ_kc, σ²_kc)] over the
    projected embedding; evaluation at μ, training perturbs the means."""
    head = GMMPlusHead(
        2, 2, num_components=2, embed_dim=2, predicate_counts=[100, 1], init_temperature=2.0
    )
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(2))
        head.proj.bias.zero_()
        head.means.copy_(torch.tensor([[[0.0, 0.0], [2.0, 0.0]], [[0.0, 3.0], [0.0, 3.0]]]))
        head.spread_raw.fill_(0.5413)  # unit variances
        head.spread_raw[1, 0].fill_(-20.0)  # var_min for class 1's first component
        head.mix_logits.copy_(torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]]))
        head.bias.copy_(torch.tensor([0.5, -0.5]))
    head.eval()
    z = torch.tensor([[1.0, 1.0]])
    out = head(z)

    def log_normal(x, m, v):
        return sum(
            -0.5 * ((a - b) ** 2 / vv + math.log(vv) + math.log(2 * math.pi))
            for a, b, vv in zip(x, m, v)
        )

    v1 = (math.log1p(math.exp(0.5413)) + 1e-6,) * 2
    lp0 = math.log(
        0.25 * math.exp(log_normal([1, 1], [0, 0], v1))
        + 0.75 * math.exp(log_normal([1, 1], [2, 0], v1))
    )
    lp1 = math.log(
        0.5 * math.exp(log_normal([1, 1], [0, 3], (1e-3, 1e-3)))
        + 0.5 * math.exp(log_normal([1, 1], [0, 3], v1))
    )
    shift = 0.5 * 2 * (1 + math.log(2 * math.pi))
    assert out.extras["log_density"][0].tolist() == pytest.approx([lp0, lp1], rel=1e-5)
    want = [(lp0 + shift) / 2.0 + 0.5, (lp1 + shift) / 2.0 - 0.5]
    assert out.logits[0].tolist() == pytest.approx(want, rel=1e-5)
    assert out.probs[0].tolist() == pytest.approx([sig(w) for w in want], rel=1e-5)
    assert torch.equal(head(z).logits, out.logits)  # deterministic at evaluation
    head.train()
    assert not torch.allclose(head(z).logits, out.logits)  # perturbed means in training
    eps = torch.zeros(1, 2, 2, 2)
    assert torch.allclose(head(z, eps).logits, out.logits)  # zero noise = the means
    # the frequency-aware floor: only class 1's first component is below it
    reg = head.variance_regularizer(out)
    w1 = 1.0 / ((1 / 100 + 1) / 2)
    assert reg.item() == pytest.approx(w1 * (math.log(0.05) - math.log(1e-3)) * 0.5 / 2, rel=1e-5)
    with pytest.raises(ValueError, match="variant"):
        GMMPlusHead(2, 2, variant="mixture")


def test_prototype_heads_by_hand():
    head = PrototypeHead(2, 2, kind="euclidean")
    with torch.no_grad():
        head.prototypes.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    out = head(torch.tensor([[1.0, 0.0]]))
    assert out.logits[0].tolist() == pytest.approx([0.0, -2.0], abs=1e-5)
    g = PrototypeHead(2, 2, kind="gaussian")
    with torch.no_grad():
        g.prototypes.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
        g.log_var.copy_(torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]]))
    x = torch.tensor([[1.0, 2.0]])
    ll0 = -0.5 * ((1 + 0 + math.log(2 * math.pi)) + (4 + 0 + math.log(2 * math.pi)))
    ll1 = -0.5 * ((0 / 4 + math.log(4) + math.log(2 * math.pi)) + (1 + 0 + math.log(2 * math.pi)))
    assert g(x).logits[0].tolist() == pytest.approx([ll0, ll1], abs=1e-5)
    assert gaussian_log_likelihood(x, g.prototypes, g.log_var)[0].tolist() == pytest.approx(
        [ll0, ll1], abs=1e-5
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinearHead(8, 5),
        lambda: GMMHead(8, 5, 3),
        lambda: GMMPlusHead(8, 5, 2, act="softmax"),
        lambda: GMMPlusHead(8, 5, 2, act="softmax", variant="code"),
        lambda: BayesianHead(8, 5, 3),
        lambda: PrototypeHead(8, 5, proto_dim=4),
    ],
)
def test_heads_learn_a_tiny_task(make):
    torch.manual_seed(0)
    head = make()
    x = torch.randn(40, 8)
    y = x[:, :5].argmax(1)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(150):
        out = head.train()(x)
        loss = F.cross_entropy(out.logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = head.eval()(x)
    assert (out.probs.argmax(1) == y).float().mean().item() >= 0.95
    assert out.logits.shape == (40, 5) and torch.isfinite(out.logits).all()


def test_gmm_head_monte_carlo_evaluation_option():
    """``test_samples=S``: evaluation averages S draws of the training form (converging to the
    expectation, not to the value at μ); 0 evaluates at μ."""
    from tailgraph.modeling.heads.gmm import GMMHead, mixture_activation

    torch.manual_seed(0)
    h = GMMHead(6, 4, num_components=3, act="sigmoid").eval()
    x = torch.randn(5, 6)
    at_mu = h(x).probs
    h.test_samples = 4000
    mc = h(x).probs
    mu = h.mean(x).view(5, 3, 4).transpose(0, 1)
    var = torch.sigmoid(h.var(x)).view(5, 3, 4).transpose(0, 1)
    w = torch.softmax(h.mix(x), -1).t().unsqueeze(-1)
    z = torch.randn(20000, *mu.shape)
    expect = (w * mixture_activation(mu + var.sqrt() * z, "sigmoid")).sum(1).mean(0)
    assert torch.allclose(mc, expect, atol=0.01)
    assert not torch.allclose(mc, at_mu, atol=1e-3)
    with pytest.raises(ValueError, match="test_samples"):
        GMMHead(6, 4, test_samples=-1)


def test_bayesian_head_log_var_init_sets_the_starting_sigma():
    from tailgraph.modeling.heads.bayesian import BayesianHead

    torch.manual_seed(0)
    h = BayesianHead(8, 3, log_var_init=-4.0)
    out = h(torch.randn(5, 8))
    assert torch.allclose(out.extras["aleatoric"], torch.full((5, 3), math.exp(-4.0)))
    default = BayesianHead(8, 3)  # PyTorch's initialisation: sigma near 1
    sigma2 = default(torch.randn(5, 8)).extras["aleatoric"]
    assert 0.3 < float(sigma2.mean()) < 3.0


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_gmm_plus_perturb_false_trains_on_the_means_as_evaluation_does(variant):
    """``perturb: false`` (the ablation switch): a training forward equals the evaluation one;
    with the default the training forward draws a perturbation and differs."""
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    outs = {}
    for perturb in (True, False):
        torch.manual_seed(1)
        head = GMMPlusHead(8, 3, num_components=2, variant=variant, perturb=perturb)
        head.eval()
        at_test = head(x).logits
        head.train()
        outs[perturb] = (head(x).logits, at_test)
    torch.testing.assert_close(outs[False][0], outs[False][1])
    assert not torch.allclose(outs[True][0], outs[True][1])
    torch.testing.assert_close(outs[True][1], outs[False][1])  # the same weights at test


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_gmm_plus_noise_scale_scales_the_drawn_perturbation(variant):
    """``noise_scale: s`` trains on ``μ + s σ ε``: with the same ``ε`` a scale of 0 gives the
    evaluation forward, 1 the default head's, and a scale in between moves the logits part of
    the way (monotone in ``s``)."""
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    shape = (5, 3, 2, 32) if variant == "paper" else (2, 5, 3)
    eps = torch.randn(shape)
    logits = {}
    for s in (0.0, 0.3, 1.0):
        torch.manual_seed(1)
        head = GMMPlusHead(8, 3, num_components=2, variant=variant, noise_scale=s)
        head.eval()
        at_test = head(x).logits
        head.train()
        logits[s] = head(x, eps).logits
    torch.manual_seed(1)
    default = GMMPlusHead(8, 3, num_components=2, variant=variant)
    torch.testing.assert_close(logits[0.0], at_test)
    torch.testing.assert_close(logits[1.0], default(x, eps).logits)
    gap = {s: float((logits[s] - at_test).detach().abs().mean()) for s in logits}
    assert 0 < gap[0.3] < gap[1.0]
    with pytest.raises(ValueError, match="noise_scale"):
        GMMPlusHead(8, 3, noise_scale=-1.0)
