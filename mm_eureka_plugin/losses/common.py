"""Reductions shared by the policy losses."""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the tokens where ``mask`` is set (0 when none is)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def masked_max(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Largest of ``values`` over the tokens where ``mask`` is set (0 when none is); ``values``
    must be non-negative (e.g. ratios): masked tokens count as 0."""
    return values.masked_fill(~mask.bool(), 0.0).max()


AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "group_mean")
"""How a policy loss reduces its per-token values to the scalar (see :func:`aggregate`)."""


def check_aggregation(aggregation: str, group_size: int | None) -> None:
    """Refuse an unknown ``aggregation``, or ``group_mean`` without a ``group_size``."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}; got {aggregation!r}.")
    if aggregation == "group_mean" and (group_size is None or group_size < 1):
        raise ValueError("aggregation 'group_mean' needs group_size (samples per prompt) >= 1.")


def advantages_per_token(advantages: torch.Tensor) -> torch.Tensor:
    """Advantages as ``[batch, tokens]`` or broadcastable to it: a ``[batch]`` vector gains a token axis."""
    return advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages


def aggregate(
    per_token_loss: torch.Tensor,
    action_mask: torch.Tensor,
    aggregation: str,
    num_tokens: torch.Tensor | float | None,
    group_size: int | None,
    num_sequences: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Reduce a ``[batch, tokens]`` loss to a scalar.

    ``token_mean``: sum over unmasked tokens divided by ``num_tokens`` (default: their count in
    this batch; pass the global count to normalise across micro-batches and ranks).
    ``seq_mean_token_mean`` (MM-Eureka's PPO loss): each sequence's mean over its unmasked tokens,
    summed and divided by ``num_sequences`` (default: the sequences of this batch with a token;
    pass the global count), so every response weighs the same whatever its length.
    ``group_mean`` (CPGD paper Eq. 2): within each prompt group of ``group_size`` consecutive rows,
    sum over tokens divided by the group's token count; then the mean over groups.
    """
    mask = action_mask.to(per_token_loss.dtype)
    if aggregation == "token_mean":
        if num_tokens is None:
            num_tokens = mask.sum().clamp(min=1.0)
        return (per_token_loss * mask).sum() / num_tokens
    if aggregation == "seq_mean_token_mean":
        lengths = mask.sum(-1)
        per_sequence = (per_token_loss * mask).sum(-1) / lengths.clamp(min=1.0)
        if num_sequences is None:
            num_sequences = (lengths > 0).sum().clamp(min=1)
        return per_sequence.sum() / num_sequences
    if aggregation == "group_mean":
        batch = per_token_loss.shape[0]
        if not group_size or batch % group_size:
            raise ValueError(
                f"group_mean needs whole prompt groups: batch of {batch} rows is not a multiple of "
                f"group_size={group_size}."
            )
        sums = (per_token_loss * mask).sum(-1).view(-1, group_size).sum(-1)
        counts = mask.sum(-1).view(-1, group_size).sum(-1).clamp(min=1.0)
        return (sums / counts).mean()
    raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}; got {aggregation!r}.")
