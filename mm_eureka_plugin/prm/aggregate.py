"""Step-score aggregators: one number per solution from its PRM step scores, for Best-of-N.

MM-PRM (arXiv 2505.13427, Best-of-N experiments) ranks N sampled solutions by an aggregate of
their step scores p_1..p_T, each p_t = softmax(Yes, No)[Yes] in (0, 1). The eight aggregations it
compares, each a component of kind ``prm_aggregator``:

- ``min``: min_t p_t
- ``last``: p_T
- ``product``: prod_t p_t
- ``average``: (1/T) sum_t p_t
- ``sum_logprob``: sum_t log p_t
- ``max``: max_t p_t
- ``sum_logit``: sum_t log(p_t / (1 - p_t))
- ``mean_odds``: (1/T) sum_t p_t / (1 - p_t)

Each factory returns a callable ``(scores: Sequence[float]) -> float``. Scores must lie in
[0, 1]: a softmax in low precision can round to exactly 0 or 1, so the aggregations that take a
log or an odds clamp the scores to [eps, 1 - eps] first (factory parameter ``eps``, default
1e-6). No scores, a NaN, or a score outside [0, 1] raise ``ValueError``.
"""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Callable, Sequence


def check_scores(scores: Sequence[float]) -> list[float]:
    """``scores`` as a list of floats; ``ValueError`` if empty, or if one is NaN, not a number or outside [0, 1]."""
    values = []
    for index, score in enumerate(scores):
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise ValueError(f"step score at index {index} is {score!r}, not a number.") from None
        if not 0.0 <= value <= 1.0:  # also catches NaN
            raise ValueError(f"step score at index {index} is {value!r}; step scores must be probabilities in [0, 1].")
        values.append(value)
    if not values:
        raise ValueError("no step scores to aggregate: the solution has no steps (check the step splitter).")
    return values


class StepScoreAggregator:
    """``(scores) -> float``: check the scores, clamp them to [eps, 1 - eps] if ``eps`` is set, reduce them."""

    def __init__(self, name: str, reduce: Callable[[list[float]], float], eps: float | None = None) -> None:
        if eps is not None and not 0.0 < eps < 0.5:
            raise ValueError(f"eps must be in (0, 0.5), got {eps!r}.")
        self.name = name
        self.reduce = reduce
        self.eps = eps

    def __call__(self, scores: Sequence[float]) -> float:
        values = check_scores(scores)
        if self.eps is not None:
            values = [min(max(p, self.eps), 1.0 - self.eps) for p in values]
        return float(self.reduce(values))

    def __repr__(self) -> str:
        eps = "" if self.eps is None else f", eps={self.eps}"
        return f"StepScoreAggregator({self.name!r}{eps})"


def _sum_logprob(ps: list[float]) -> float:
    return math.fsum(math.log(p) for p in ps)


def _sum_logit(ps: list[float]) -> float:
    return math.fsum(math.log(p / (1.0 - p)) for p in ps)


def _mean_odds(ps: list[float]) -> float:
    return statistics.fmean(p / (1.0 - p) for p in ps)


def min_aggregator() -> StepScoreAggregator:
    """Minimum step score: a solution is as good as its weakest step."""
    return StepScoreAggregator("min", min)


def last_aggregator() -> StepScoreAggregator:
    """Score of the last step (the answer step)."""
    return StepScoreAggregator("last", operator.itemgetter(-1))


def product_aggregator() -> StepScoreAggregator:
    """Product of the step scores: the chance that every step is right, were the steps independent."""
    return StepScoreAggregator("product", math.prod)


def average_aggregator() -> StepScoreAggregator:
    """Mean of the step scores."""
    return StepScoreAggregator("average", statistics.fmean)


def sum_logprob_aggregator(eps: float = 1e-6) -> StepScoreAggregator:
    """Sum of log step scores, sum log p; scores clamped to [eps, 1 - eps]."""
    return StepScoreAggregator("sum_logprob", _sum_logprob, eps)


def max_aggregator() -> StepScoreAggregator:
    """Maximum step score."""
    return StepScoreAggregator("max", max)


def sum_logit_aggregator(eps: float = 1e-6) -> StepScoreAggregator:
    """Sum of step logits, sum log(p / (1 - p)); scores clamped to [eps, 1 - eps]."""
    return StepScoreAggregator("sum_logit", _sum_logit, eps)


def mean_odds_aggregator(eps: float = 1e-6) -> StepScoreAggregator:
    """Mean of step odds, mean p / (1 - p); scores clamped to [eps, 1 - eps]."""
    return StepScoreAggregator("mean_odds", _mean_odds, eps)
