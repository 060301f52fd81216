"""Per-group advantage weights omega(x) of CPGD (arXiv 2505.12504, Sec. 4), over the global batch.

Each is a callable ``(rewards[num_prompts, n_samples]) -> weights`` of the same shape; the
advantage of a sample is ``weight * (reward - mean of its group's rewards)``.
"""

from __future__ import annotations

import torch


def _check(rewards: torch.Tensor) -> None:
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(
            f"advantage weights need a [num_prompts, n_samples >= 2] reward matrix, got shape {tuple(rewards.shape)}."
        )


class EqualWeight:
    """omega = 1: the plain group-centred reward (REINFORCE with a group-mean baseline)."""

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        _check(rewards)
        return torch.ones_like(rewards, dtype=torch.float32)


class StdWeight:
    """omega = 1 / (std + eps) per group (unbiased std): GRPO's z-score, CPGD's best Table 1 row."""

    def __init__(self, eps: float = 1e-9) -> None:
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}.")
        self.eps = eps

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        _check(rewards)
        std = rewards.float().std(dim=-1, keepdim=True)
        return (1.0 / (std + self.eps)).expand_as(rewards).clone()


class ClipFilterLikeWeight:
    """omega = min(max_weight, B / #groups with nonzero reward std); zero-std groups keep 1.

    B is the number of prompt groups in the batch: the weight scales the informative groups up as
    if the uninformative ones had been filtered out, capped at ``max_weight`` (paper: 3).
    """

    def __init__(self, max_weight: float = 3.0) -> None:
        if max_weight < 1.0:
            raise ValueError(f"max_weight must be >= 1, got {max_weight}.")
        self.max_weight = max_weight

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        _check(rewards)
        informative = rewards.float().std(dim=-1) > 0
        count = int(informative.sum())
        weight = min(self.max_weight, rewards.shape[0] / count) if count else 1.0
        weights = torch.ones_like(rewards, dtype=torch.float32)
        weights[informative] = weight
        return weights
