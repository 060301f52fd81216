"""MM-Eureka's PPO-clip with the ratio cap at 3."""

import math

import pytest
import torch

from mm_eureka_plugin.losses import CappedPPOLoss


def run(loss_fn, log_ratio, adv):
    old = torch.zeros_like(log_ratio)
    log_probs = log_ratio.clone().requires_grad_(True)
    loss, metrics = loss_fn(log_probs, old, adv, torch.ones_like(log_ratio, dtype=torch.bool))
    loss.backward()
    return loss, metrics, log_probs.grad


def test_ratio_cap_bounds_a_negative_advantage_token():
    log_ratio = torch.tensor([[math.log(4.0)]])
    loss, metrics, grad = run(CappedPPOLoss(ratio_cap=3.0), log_ratio, torch.tensor([-1.0]))
    assert loss.item() == pytest.approx(3.0)  # -min(3 * -1, 1.2 * -1)
    assert grad.item() == 0.0  # the cap stops the gradient
    assert metrics["max_ratio"].item() == pytest.approx(4.0)
    loss, _, grad = run(CappedPPOLoss(ratio_cap=None), log_ratio, torch.tensor([-1.0]))
    assert loss.item() == pytest.approx(4.0)
    assert grad.item() == pytest.approx(4.0)  # d(-r * A)/d ln pi = -A * r


def test_clip_and_unclipped_gradients():
    log_ratio = torch.tensor([[0.0], [math.log(1.5)]])
    loss, metrics, grad = run(CappedPPOLoss(), log_ratio, torch.tensor([2.0, 2.0]))
    assert grad.squeeze(-1).tolist() == pytest.approx([-2.0 / 2, 0.0])
    assert metrics["clip_frac"].item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx(-(2.0 + 1.2 * 2.0) / 2)


def test_cap_must_exceed_clip_range():
    with pytest.raises(ValueError, match="ratio_cap"):
        CappedPPOLoss(clip_eps=0.2, ratio_cap=1.1)


def test_seq_mean_token_mean_weighs_every_response_the_same():
    """MM-Eureka's reduction (its PolicyLoss without --use_dapo): ``masked_mean(loss, mask, dim=-1).mean()``."""
    torch.manual_seed(0)
    log_probs = (torch.randn(3, 6) * 0.2).requires_grad_(True)
    old, adv = torch.randn(3, 6) * 0.2, torch.tensor([1.0, -0.5, 2.0])
    mask = torch.tensor([[1] * 6, [1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    loss, _ = CappedPPOLoss(aggregation="seq_mean_token_mean")(log_probs, old, adv, mask)

    ratio = (log_probs - old).exp().clamp(max=3.0)
    per_token = -torch.minimum(ratio * adv[:, None], ratio.clamp(0.8, 1.2) * adv[:, None])
    reference = ((per_token * mask).sum(-1) / mask.sum(-1)).mean()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    token_mean, _ = CappedPPOLoss()(log_probs, old, adv, mask)
    assert token_mean.item() != pytest.approx(loss.item(), rel=1e-2)  # the long first response weighs 6/9 there

    (grad,) = torch.autograd.grad(loss, log_probs)
    # each response's tokens share 1/3 of the gradient: the one-token response's token gets 6x a long one's
    assert grad[2, 0].abs().item() > 0 and grad[2, 1:].abs().sum().item() == 0
    unclipped = ratio[2, 0] * adv[2] / 3
    assert grad[2, 0].item() == pytest.approx(-unclipped.item(), rel=1e-5)


def test_seq_mean_token_mean_divides_by_the_given_sequence_count_and_skips_empty_rows():
    log_probs, old = torch.zeros(3, 2, requires_grad=True), torch.zeros(3, 2)
    mask = torch.tensor([[1, 1], [1, 0], [0, 0]], dtype=torch.bool)
    adv = torch.tensor([1.0, 2.0, 5.0])
    loss, _ = CappedPPOLoss(aggregation="seq_mean_token_mean")(log_probs, old, adv, mask)
    assert loss.item() == pytest.approx(-(1.0 + 2.0) / 2)  # the empty third row is not a sequence
    loss, _ = CappedPPOLoss(aggregation="seq_mean_token_mean")(log_probs, old, adv, mask, num_sequences=6.0)
    assert loss.item() == pytest.approx(-(1.0 + 2.0) / 6)
