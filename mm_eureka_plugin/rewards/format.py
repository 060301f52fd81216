"""MM-Eureka's format reward (arXiv 2503.07365): reasoning in ``<think>``, then the answer in ``<answer>``."""

from __future__ import annotations

import re

from mm_eureka_plugin.rewards.types import RewardResult, RewardSample

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_SHAPE = re.compile(r"<think>.+?</think>\s*<answer>.+?</answer>", re.DOTALL)


class FormatReward:
    """MM-Eureka format: 1 if the response is <think>...</think> <answer>...</answer>, each tag once, else 0.

    The response must hold each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` exactly
    once, in the shape ``<think>.+?</think>\\s*<answer>.+?</answer>`` (newlines allowed), with
    nothing but whitespace around it. ``allow_outer_text=True`` also accepts text before
    ``<think>`` and after ``</answer>``, as MM-Eureka's code did. MM-Eureka scored this 0.5; here
    it is 1 and the weight lives in the composition (``weighted``'s default gives it 0.5).

    Result: ``reward = components["format"]`` in {0, 1}; ``score`` None (no opinion for filtering).
    """

    uses_images = False

    def __init__(self, allow_outer_text: bool = False) -> None:
        self.allow_outer_text = allow_outer_text

    def check(self, response: str) -> bool:
        """Whether ``response`` has the think/answer format."""
        if any(response.count(tag) != 1 for tag in TAGS):
            return False
        if self.allow_outer_text:
            return _SHAPE.search(response) is not None
        return _SHAPE.fullmatch(response.strip()) is not None

    def __call__(self, samples: list[RewardSample]) -> list[RewardResult]:
        results = []
        for sample in samples:
            value = float(self.check(sample.response))
            results.append(RewardResult(reward=value, components={"format": value}))
        return results
