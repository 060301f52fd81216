"""PPO-clip with MM-Eureka's ratio cap (arXiv 2503.07365)."""

from __future__ import annotations

from typing import Literal

import torch

from mm_eureka_plugin.losses.common import advantages_per_token, aggregate, check_aggregation, masked_max, masked_mean


class CappedPPOLoss:
    """PPO-clip loss whose importance ratio is first capped at ``ratio_cap`` (MM-Eureka: 3).

    Per token: r = min(exp(ln pi_theta - ln pi_old), ratio_cap);
    loss = -aggregate(min(r * A, clip(r, 1 - clip_eps, 1 + clip_eps) * A)).
    ``ratio_cap: null`` gives plain PPO-clip. Metrics: ``clip_frac`` (tokens where the clipped
    term is the minimum), ``max_ratio`` (before the cap) and ``approx_kl`` (mean of ln pi_old - ln pi_theta).
    """

    def __init__(
        self,
        clip_eps: float = 0.2,
        ratio_cap: float | None = 3.0,
        aggregation: Literal["token_mean", "seq_mean_token_mean", "group_mean"] = "token_mean",
        group_size: int | None = None,
    ) -> None:
        if not 0.0 < clip_eps < 1.0:
            raise ValueError(f"clip_eps must be in (0, 1), got {clip_eps}.")
        if ratio_cap is not None and ratio_cap <= 1.0 + clip_eps:
            raise ValueError(f"ratio_cap must exceed 1 + clip_eps = {1 + clip_eps}, got {ratio_cap}.")
        check_aggregation(aggregation, group_size)
        self.clip_eps = clip_eps
        self.ratio_cap = ratio_cap
        self.aggregation = aggregation
        self.group_size = group_size

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
        log_ratio = (log_probs - old_log_probs.detach()).clamp(min=-20.0, max=20.0)
        raw_ratio = log_ratio.exp()
        ratio = raw_ratio if self.ratio_cap is None else raw_ratio.clamp(max=self.ratio_cap)
        surr1 = ratio * advantages
        surr2 = ratio.clamp(1.0 - self.clip_eps, 1.0 + self.clip_eps) * advantages
        per_token = -torch.minimum(surr1, surr2)
        loss = aggregate(per_token, action_mask, self.aggregation, num_tokens, self.group_size, num_sequences)
        metrics = {
            "clip_frac": masked_mean((surr2 < surr1).float(), action_mask),
            "max_ratio": masked_max(raw_ratio.detach(), action_mask),
            "approx_kl": masked_mean(-log_ratio.detach(), action_mask),
        }
        return loss, metrics
