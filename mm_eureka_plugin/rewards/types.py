"""The reward contract's types: what a reward (:class:`~mm_eureka_plugin.contracts.Reward`) sees
(:class:`RewardSample`) and returns (:class:`RewardResult`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class RewardSample:
    """One rollout to score.

    ``response`` is the decoded response only (no prompt, no image-pad tokens); ``label`` the
    gold answer; ``prompt`` the prompt text; ``images`` the prompt's PIL images; ``metadata``
    the data row's metadata (its ``id`` among others).
    """

    response: str
    label: str
    prompt: str = ""
    images: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


@dataclass
class RewardResult:
    """A reward's verdict on one sample.

    ``reward`` is the scalar used for training; ``components`` named scores logged per step
    (e.g. ``accuracy``, ``format``); ``score`` in [0, 1] feeds online filtering (None: no
    opinion); ``step_rewards`` (character offset in ``response`` where a step ends, value) pairs
    for dense credit, used in training when the reward has ``dense = True`` (each value is added at
    the token that ends the step, see ``patches/agent_executor.py``); ``error`` says
    why the reward could not be computed (the reward is then 0 and the error is counted).
    """

    reward: float
    components: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    step_rewards: list[tuple[int, float]] | None = None
    error: str | None = None


def as_result(value: Any) -> RewardResult:
    """A reward's return value for one sample as a :class:`RewardResult` (floats are wrapped)."""
    if isinstance(value, RewardResult):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = RewardResult(reward=float(value))
    else:
        raise TypeError(f"a reward must return floats or RewardResult objects, got {type(value).__name__}")
    if not math.isfinite(result.reward):
        raise ValueError(f"reward is not finite: {result.reward}")
    return result


def score_samples(
    reward: Callable[[list[RewardSample]], Sequence[RewardResult | float]], samples: list[RewardSample]
) -> list[RewardResult]:
    """Call ``reward`` (a :class:`~mm_eureka_plugin.contracts.Reward`) on ``samples`` and return one result per sample; never raises.

    A reward that raises, returns the wrong number of values or a value of the wrong type gives
    every sample of the call reward 0 with ``error`` set, and the error is logged.
    """
    try:
        values = list(reward(samples))
        if len(values) != len(samples):
            raise ValueError(f"returned {len(values)} results for {len(samples)} samples")
        return [as_result(v) for v in values]
    except Exception as exc:  # a reward never crashes training
        message = f"{type(exc).__name__}: {exc}"
        logger.warning("reward failed on %d sample(s): %s", len(samples), message)
        return [RewardResult(reward=0.0, error=message) for _ in samples]
