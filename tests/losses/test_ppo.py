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
