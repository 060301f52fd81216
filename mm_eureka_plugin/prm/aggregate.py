"""Step-score aggregators: one number per solution from its PRM step scores, for Best-of-N.

MM-PRM (arXiv 2505.13427, Best-of-N experiments) ranks N sampled solutions by an aggregate of
their step scores p_1..p_T, each p_t = softmax(Yes, No)[Yes] in [0, 1]. The eight aggregations it
compares (``eval/prm/extract_calculate.py``, ``calculate_accuracy``, at ModalMinds/MM-PRM
b914fd66), each a component of kind ``prm_aggregator``:

- ``min``: min_t p_t
- ``last``: p_T
- ``product``: prod_t p_t
- ``average``: (1/T) sum_t p_t
- ``sum_logprob``: sum_t log p_t, with log 0 taken as -9999
- ``max``: max_t p_t
- ``sum_logit``: sum_t log(p_t / (1 - p_t)), with the logit of 1 taken as +9999 and of 0 as -9999
- ``mean_odds``: (1/T) sum_t p_t / (1 - p_t), with the odds of 1 taken as 9999 (MM-PRM's ``mean_odd``)

A softmax in bf16 can round to exactly 0 or 1. MM-PRM then puts the sentinel 9999 (``SATURATED``)
in place of the infinite term, and so do we, so scores rank as in MM-PRM also at saturation. MM-PRM
has no rule for the logit of 0 (its script stops with a math domain error); we use -9999, the
mirror image of its +9999. A sentinel outweighs any real term (|log p| < 746 for any positive
double), so one saturated step decides the ranking; a solution with two such steps counts twice.
Values this large do not suit an RL reward; there, give ``eps`` (e.g. 1e-6) to clamp the scores
to [eps, 1 - eps] first, which keeps every value finite and small and no sentinel is needed.

Each factory returns a callable ``(scores: Sequence[float]) -> float``. Scores must lie in [0, 1];
no scores, a NaN, or a score outside [0, 1] raise ``ValueError``. A solution without steps has no
scores to aggregate: :func:`mm_eureka_plugin.eval.best_of_n.evaluate` ranks it by the aggregator's
``no_steps_score`` (see :class:`StepScoreAggregator`).
"""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Callable, Sequence

SATURATED = 9999.0
"""MM-PRM's sentinel for a log, logit or odds that is infinite at a score of exactly 0 or 1."""


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
    """``(scores) -> float``: check the scores, clamp them to [eps, 1 - eps] if ``eps`` is set, reduce them.

    ``no_steps_score`` is what Best-of-N ranks a solution without steps by. MM-PRM scores it 0
    (``extract_calculate.py``: ``... if x else 0``), the floor of every aggregation whose values
    lie in [0, inf), so there it is 0 and ranks as in MM-PRM. ``sum_logprob`` and ``sum_logit``
    take negative values, where MM-PRM's 0 would rank a solution without steps above real ones:
    there it is -inf, never picked over a solution with steps.
    """

    def __init__(
        self,
        name: str,
        reduce: Callable[[list[float]], float],
        eps: float | None = None,
        no_steps_score: float = 0.0,
    ) -> None:
        if eps is not None and not 0.0 < eps < 0.5:
            raise ValueError(f"eps must be in (0, 0.5), got {eps!r}.")
        self.name = name
        self.reduce = reduce
        self.eps = eps
        self.no_steps_score = no_steps_score

    def __call__(self, scores: Sequence[float]) -> float:
        values = check_scores(scores)
        if self.eps is not None:
            values = [min(max(p, self.eps), 1.0 - self.eps) for p in values]
        return float(self.reduce(values))

    def __repr__(self) -> str:
        eps = "" if self.eps is None else f", eps={self.eps}"
        return f"StepScoreAggregator({self.name!r}{eps})"


def _log(p: float) -> float:
    return math.log(p) if p != 0.0 else -SATURATED


def _logit(p: float) -> float:
    if p == 1.0:
        return SATURATED
    if p == 0.0:
        return -SATURATED
    return math.log(p / (1.0 - p))


def _odds(p: float) -> float:
    return p / (1.0 - p) if p != 1.0 else SATURATED


def _sum_logprob(ps: list[float]) -> float:
    return math.fsum(map(_log, ps))


def _sum_logit(ps: list[float]) -> float:
    return math.fsum(map(_logit, ps))


def _mean_odds(ps: list[float]) -> float:
    return statistics.fmean(map(_odds, ps))


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


def sum_logprob_aggregator(eps: float | None = None) -> StepScoreAggregator:
    """Sum of log step scores, sum log p; log 0 = -9999 as in MM-PRM, or scores clamped to [eps, 1 - eps]."""
    return StepScoreAggregator("sum_logprob", _sum_logprob, eps, no_steps_score=-math.inf)


def max_aggregator() -> StepScoreAggregator:
    """Maximum step score."""
    return StepScoreAggregator("max", max)


def sum_logit_aggregator(eps: float | None = None) -> StepScoreAggregator:
    """Sum of step logits, sum log(p / (1 - p)); logit 1 = 9999 (MM-PRM), logit 0 = -9999, or clamped to [eps, 1 - eps]."""
    return StepScoreAggregator("sum_logit", _sum_logit, eps, no_steps_score=-math.inf)


def mean_odds_aggregator(eps: float | None = None) -> StepScoreAggregator:
    """Mean of step odds, mean p / (1 - p); odds of 1 = 9999 as in MM-PRM, or scores clamped to [eps, 1 - eps]."""
    return StepScoreAggregator("mean_odds", _mean_odds, eps)
