"""CPGD: Clipped Policy Gradient optimization with policy Drift (arXiv 2505.12504)."""

from __future__ import annotations

import math
from typing import Literal

import torch

from mm_eureka_plugin.losses.common import advantages_per_token, aggregate, check_aggregation, masked_max, masked_mean


class CPGDLoss:
    """CPGD policy loss: clipped log-ratio policy gradient plus a capped forward-KL drift penalty.

    Per response token i, with r_i = pi_theta / pi_old and sequence advantage A (paper Eq. 2-4)::

        Phi_i = min(ln r_i * A, clip(ln r_i, ln(1 - eps_i), ln(1 + eps_i)) * A)
        D_i   = k3 estimate of KL(pi_old || pi_theta) = q_i - 1 - ln q_i with q_i = min(r_i, 1 + drift_clip),
                whose gradient is replaced by min(r_i - 1, drift_clip) * grad ln pi_theta(y_i)
        loss  = -aggregate(Phi_i - drift_coef * D_i)

    The gradient is the paper's and the authors' code's (MM-EUREKA, commit fe4a536 "update CPGD":
    ``openrlhf/models/loss.py`` clamps ``log_probs`` at ``old_log_probs + ln(1 +/- eps)`` by the
    sign of A; ``ppo_trainer.py`` adds ``policy_drift_coef * token_mean(clamp(r - 1, max=
    policy_drift_clip_eps) * log_probs)``). The defaults are that code's argparse defaults, which
    its published CPGD scripts keep: ``eps_clip`` 0.2, ``policy_drift_coef`` 0.01 and
    ``policy_drift_clip_eps`` 2.0 (a cap on the coefficient r - 1, not a clip of r to 1 +/- eps).
    The value reads as -(clipped objective - drift_coef * KL estimate); the ratio in the estimate
    is capped as its gradient is, so one runaway token cannot make the logged loss overflow.
    ``eps_i`` is ``clip_eps``, or with ``eps_schedule_lambda`` = lambda the paper's tight-to-loose
    schedule ``lambda*eps + (1 - lambda)*eps*i/|y|`` (i counted from 1).

    Metrics: ``clip_frac`` (tokens whose clipped term is the minimum, so they pass no policy
    gradient), ``drift`` (mean D_i) and ``max_ratio`` (uncapped).
    """

    def __init__(
        self,
        clip_eps: float = 0.2,
        drift_coef: float = 0.01,
        drift_clip: float = 2.0,
        aggregation: Literal["token_mean", "seq_mean_token_mean", "group_mean"] = "token_mean",
        group_size: int | None = None,
        eps_schedule_lambda: float | None = None,
    ) -> None:
        if not 0.0 < clip_eps < 1.0:
            raise ValueError(f"clip_eps must be in (0, 1), got {clip_eps}.")
        if drift_coef < 0.0:
            raise ValueError(f"drift_coef must be >= 0, got {drift_coef}.")
        if drift_clip <= 0.0:
            raise ValueError(f"drift_clip must be > 0, got {drift_clip}.")
        check_aggregation(aggregation, group_size)
        if eps_schedule_lambda is not None and not 0.0 <= eps_schedule_lambda <= 1.0:
            raise ValueError(f"eps_schedule_lambda must be in [0, 1], got {eps_schedule_lambda}.")
        self.clip_eps = clip_eps
        self.drift_coef = drift_coef
        self.drift_clip = drift_clip
        self.aggregation = aggregation
        self.group_size = group_size
        self.eps_schedule_lambda = eps_schedule_lambda

    def clip_bounds(self, action_mask: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """Lower and upper bounds on ln r per token: ln(1 - eps_i) and ln(1 + eps_i)."""
        if self.eps_schedule_lambda is None:
            return math.log1p(-self.clip_eps), math.log1p(self.clip_eps)
        mask = action_mask.to(torch.float32)
        position = mask.cumsum(-1)
        length = mask.sum(-1, keepdim=True).clamp(min=1.0)
        lam = self.eps_schedule_lambda
        eps = lam * self.clip_eps + (1.0 - lam) * self.clip_eps * (position / length).clamp(max=1.0)
        return torch.log1p(-eps), torch.log1p(eps)

    def __call__(
        self,
        log_probs: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        action_mask: torch.Tensor,
        *,
        num_tokens: torch.Tensor | float | None = None,
        num_sequences: torch.Tensor | float | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        advantages = advantages_per_token(advantages)
        log_ratio = log_probs - old_log_probs.detach()
        low, high = self.clip_bounds(action_mask)
        # min(ln r * A, clip(ln r) * A) = A * min(ln r, ln(1 + eps)) for A >= 0, A * max(ln r, ln(1 - eps)) for A < 0
        positive = advantages >= 0
        phi = torch.where(positive, log_ratio.clamp(max=high), log_ratio.clamp(min=low)) * advantages

        with torch.no_grad():
            ratio = log_ratio.exp()
            capped = log_ratio.clamp(max=math.log1p(self.drift_clip))
            k3 = capped.exp() - 1.0 - capped
            coef = (ratio - 1.0).clamp(max=self.drift_clip)
            clipped = torch.where(positive, log_ratio > high, log_ratio < low)
        # value k3, gradient coef * grad ln pi_theta
        drift = k3 + coef * (log_probs - log_probs.detach())

        per_token = self.drift_coef * drift - phi
        loss = aggregate(per_token, action_mask, self.aggregation, num_tokens, self.group_size, num_sequences)
        metrics = {
            "clip_frac": masked_mean(clipped.float(), action_mask),
            "drift": masked_mean(k3, action_mask),
            "max_ratio": masked_max(ratio, action_mask),
        }
        return loss, metrics
