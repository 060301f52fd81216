"""MM-PRM's Best-of-N scoring written out from its formulas, the reference the aggregator and Best-of-N tests check against.

Source: ModalMinds/MM-PRM b914fd66, ``eval/prm/extract_calculate.py``, ``calculate_accuracy``: per
candidate, an aggregation of its step scores, 0 for a candidate without steps (``... if x else 0``);
the pick is ``prm_score.index(max(prm_score))``, the first of tied maxima.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

SENTINEL = 9999


def mm_prm_score(name: str, x: Sequence[float]) -> float:
    """MM-PRM's aggregate ``name`` of step scores ``x``; sum_logit raises ValueError at a score of 0, as theirs does."""
    if not x:
        return 0
    if name == "min":
        return min(x)
    if name == "last":
        return x[-1]
    if name == "product":
        return functools.reduce(lambda a, b: a * b, x)
    if name == "average":
        return sum(x) / len(x)
    if name == "sum_logprob":
        return sum(math.log(a) if a != 0 else -SENTINEL for a in x)
    if name == "max":
        return max(x)
    if name == "sum_logit":
        return sum(math.log(a / (1 - a)) if a != 1 else SENTINEL for a in x)
    if name == "mean_odds":  # their "mean_odd"
        return sum(a / (1 - a) if a != 1 else SENTINEL for a in x) / len(x)
    raise KeyError(name)


def mm_prm_pick(name: str, candidates_scores: Sequence[Sequence[float]]) -> int:
    """The index MM-PRM picks among candidates with these step scores."""
    prm_score = [mm_prm_score(name, list(x)) for x in candidates_scores]
    return prm_score.index(max(prm_score))
