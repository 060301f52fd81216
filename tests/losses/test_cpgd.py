"""CPGD gradients and values against hand-derived numbers (arXiv 2505.12504, Eq. 2-4)."""

import math

import pytest
import torch

from mm_eureka_plugin.losses import CPGDLoss

EPS = 0.2
ALPHA = 0.1
CLIP = 2.0
HIGH, LOW = math.log(1 + EPS), math.log(1 - EPS)


def grad_of(loss_fn, log_ratio, advantages, mask, **kwargs):
    old = torch.full_like(log_ratio, -1.0)
    log_probs = (old + log_ratio).clone().requires_grad_(True)
    loss, metrics = loss_fn(log_probs, old, advantages, mask, **kwargs)
    loss.backward()
    return loss, metrics, log_probs.grad


def test_gradients_for_each_advantage_sign_clip_and_drift_cap():
    # One response token per row; the last row's token is masked out.
    log_ratio = torch.tensor([[0.1], [0.5], [0.5], [-0.5], [1.5], [3.0]])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, 5.0])
    mask = torch.tensor([[1], [1], [1], [1], [1], [0]], dtype=torch.bool)
    loss, metrics, grad = grad_of(CPGDLoss(EPS, ALPHA, CLIP), log_ratio, adv, mask)

    n = 5
    r = [math.exp(x) for x in (0.1, 0.5, 0.5, -0.5, 1.5)]
    expected = [
        -(1.0 - ALPHA * (r[0] - 1)) / n,  # A > 0, inside the clip: policy gradient flows
        -(0.0 - ALPHA * (r[1] - 1)) / n,  # A > 0, ln r above ln(1.2): clipped, drift only
        -(-1.0 - ALPHA * (r[2] - 1)) / n,  # A < 0, ln r above: the unclipped term is the minimum
        -(0.0 - ALPHA * (r[3] - 1)) / n,  # A < 0, ln r below ln(0.8): clipped, drift only (negative coef)
        -(0.0 - ALPHA * CLIP) / n,  # drift coefficient r - 1 = 3.48 capped at 2
        0.0,  # masked
    ]
    assert grad.squeeze(-1).tolist() == pytest.approx(expected, abs=1e-6)

    phi = [0.1, HIGH, -0.5, -LOW, HIGH]
    k3 = [q - 1 - math.log(q) for q in (min(ri, 1 + CLIP) for ri in r)]  # the value's ratio capped at 3, too
    assert loss.item() == pytest.approx(-sum(p - ALPHA * k for p, k in zip(phi, k3)) / n, rel=1e-5)
    assert metrics["clip_frac"].item() == pytest.approx(3 / 5)
    assert metrics["drift"].item() == pytest.approx(sum(k3) / n, rel=1e-5)
    assert metrics["max_ratio"].item() == pytest.approx(math.exp(1.5), rel=1e-5)


def test_token_mean_over_whole_batch_and_external_normaliser():
    log_ratio = torch.zeros(2, 3)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    _, _, grad = grad_of(CPGDLoss(EPS, 0.0, CLIP), log_ratio, adv, mask)
    # 4 unmasked tokens: each gets -A / 4 (a token-mean, not a mean of per-sequence means)
    assert grad.flatten().tolist() == pytest.approx([-0.25, -0.25, -0.25, 0.25, 0.0, 0.0])
    _, _, grad = grad_of(CPGDLoss(EPS, 0.0, CLIP), log_ratio, adv, mask, num_tokens=10.0)
    assert grad[0, 0].item() == pytest.approx(-0.1)


def test_group_mean_normalises_per_prompt_group():
    # Two groups of two samples; group 1 has 3 + 1 tokens, group 2 has 2 + 2.
    log_ratio = torch.zeros(4, 3)
    adv = torch.tensor([1.0, 1.0, 1.0, 1.0])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    _, _, grad = grad_of(CPGDLoss(EPS, 0.0, CLIP, aggregation="group_mean", group_size=2), log_ratio, adv, mask)
    assert grad[0, 0].item() == pytest.approx(-1 / 4 / 2)
    assert grad[2, 0].item() == pytest.approx(-1 / 4 / 2)
    with pytest.raises(ValueError, match="whole prompt groups"):
        CPGDLoss(aggregation="group_mean", group_size=3)(log_ratio, log_ratio, adv, mask)


def test_tight_to_loose_eps_schedule():
    loss_fn = CPGDLoss(EPS, 0.0, CLIP, eps_schedule_lambda=0.5)
    mask = torch.ones(1, 4, dtype=torch.bool)
    low, high = loss_fn.clip_bounds(mask)
    eps = [0.5 * EPS + 0.5 * EPS * i / 4 for i in (1, 2, 3, 4)]
    assert high[0].tolist() == pytest.approx([math.log1p(e) for e in eps])
    assert low[0].tolist() == pytest.approx([math.log1p(-e) for e in eps])
    # ln r = 0.16 is clipped at the first token (eps 0.125) but not at the last (eps 0.2).
    _, _, grad = grad_of(loss_fn, torch.full((1, 4), 0.16), torch.tensor([1.0]), mask)
    assert grad[0, 0].item() == 0.0
    assert grad[0, 3].item() == pytest.approx(-0.25)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"clip_eps": 1.5}, "clip_eps"),
        ({"drift_coef": -1.0}, "drift_coef"),
        ({"drift_clip": 0.0}, "drift_clip"),
        ({"aggregation": "group_mean"}, "group_size"),
        ({"eps_schedule_lambda": 2.0}, "eps_schedule_lambda"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CPGDLoss(**kwargs)


def authors_cpgd(log_probs, old, advantages, mask, eps=0.2, coef=0.01, clip=2.0):
    """The MM-EUREKA authors' CPGD (commit fe4a536): loss.py's clipped log-prob policy gradient plus
    ppo_trainer.py's policy drift, each a token mean over the micro-batch, written out as there."""
    high = torch.log(torch.tensor(1 + eps)) + old
    low = torch.log(torch.tensor(1 - eps)) + old
    clipped = torch.where(advantages > 0, torch.minimum(log_probs, high), torch.maximum(log_probs, low))
    loss = (-clipped * advantages * mask).sum() / mask.sum()
    drift = ((log_probs.detach() - old).exp() - 1.0).clamp(max=clip) * log_probs
    return loss + coef * (drift * mask).sum() / mask.sum()


def test_defaults_and_gradient_match_the_authors_code():
    loss_fn = CPGDLoss()
    assert (loss_fn.clip_eps, loss_fn.drift_coef, loss_fn.drift_clip) == (0.2, 0.01, 2.0)
    torch.manual_seed(0)
    old = -torch.rand(4, 6) * 3
    log_probs = (old + torch.randn(4, 6)).requires_grad_(True)  # ratios from ~0.05 to ~20: clip and cap both act
    advantages = torch.randn(4, 1).expand(4, 6)
    mask = torch.rand(4, 6) > 0.2
    (ours,) = torch.autograd.grad(loss_fn(log_probs, old, advantages, mask)[0], log_probs)
    (theirs,) = torch.autograd.grad(authors_cpgd(log_probs, old, advantages, mask), log_probs)
    assert torch.allclose(ours, theirs, atol=1e-7)
    assert ((log_probs - old).exp() > 3.0).any() and ((log_probs - old).exp() < 0.8).any()


def test_a_runaway_ratio_keeps_the_logged_value_finite_and_the_gradient_capped():
    log_ratio = torch.tensor([[100.0, 0.0]])  # r = e^100 on the first token: the k3 estimate overflows
    loss, metrics, grad = grad_of(CPGDLoss(EPS, ALPHA, CLIP), log_ratio, torch.tensor([-1.0]), torch.ones(1, 2))
    assert math.isfinite(loss.item()) and math.isfinite(metrics["drift"].item())
    capped_k3 = (1 + CLIP) - 1 - math.log(1 + CLIP)
    # A < 0, ln r above ln(0.8): the unclipped -100 * A term; the drift at the cap, value and gradient
    assert loss.item() == pytest.approx(-((100.0 * -1.0 - ALPHA * capped_k3) + (0.0 - 0.0)) / 2, rel=1e-5)
    assert grad[0, 0].item() == pytest.approx(-(-1.0 - ALPHA * CLIP) / 2)
