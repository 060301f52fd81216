"""``single_turn``: one response per sample, then the reward (MM-Eureka's rollout; the default)."""

from __future__ import annotations

from mm_eureka_plugin.rollouts.types import RolloutPrompt, Turn


class SingleTurn:
    """One response per sample, scored by the reward (MM-Eureka; the default)."""

    metric_keys: tuple[str, ...] = ()

    def start(self, prompt: RolloutPrompt) -> SingleTurn:
        return self

    def step(self, response: str) -> Turn:
        return Turn(done=True)
