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
        D_i   = k3 estimate of KL(pi_old || pi_theta) = r_i - 1 - ln r_i, whose gradient is
                replaced by min(r_i - 1, drift_clip) * grad ln pi_theta(y_i)
        loss  = -aggregate(Phi_i - drift_coef * D_i)

    The loss value therefore reads as -(clipped objective - drift_coef * KL estimate), and its
    gradient is the paper's. ``eps_i`` is ``clip_eps``, or with ``eps_schedule_lambda`` = lambda the
    paper's tight-to-loose schedule ``lambda*eps + (1 - lambda)*eps*i/|y|`` (i counted from 1).

    Metrics: ``clip_frac`` (tokens whose clipped term is the minimum, so they pass no policy
    gradient), ``drift`` (mean k3 estimate) and ``max_ratio``.
    """

    def __init__(
        self,
        clip_eps: float = 0.2,
        drift_coef: float = 0.01,
        drift_clip: float = 2.0,
        aggregation: Literal["token_mean", "group_mean"] = "token_mean",
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
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        advantages = advantages_per_token(advantages)
        log_ratio = log_probs - old_log_probs.detach()
        low, high = self.clip_bounds(action_mask)
        # min(ln r * A, clip(ln r) * A) = A * min(ln r, ln(1 + eps)) for A >= 0, A * max(ln r, ln(1 - eps)) for A < 0
        positive = advantages >= 0
        phi = torch.where(positive, log_ratio.clamp(max=high), log_ratio.clamp(min=low)) * advantages

        with torch.no_grad():
            ratio = log_ratio.exp()
            k3 = ratio - 1.0 - log_ratio
            coef = (ratio - 1.0).clamp(max=self.drift_clip)
            clipped = torch.where(positive, log_ratio > high, log_ratio < low)
        # value k3, gradient coef * grad ln pi_theta
        drift = k3 + coef * (log_probs - log_probs.detach())

        per_token = self.drift_coef * drift - phi
        loss = aggregate(per_token, action_mask, self.aggregation, num_tokens, self.group_size)
        metrics = {
            "clip_frac": masked_mean(clipped.float(), action_mask),
            "drift": masked_mean(k3, action_mask),
            "max_ratio": masked_max(ratio, action_mask),
        }
        return loss, metrics
