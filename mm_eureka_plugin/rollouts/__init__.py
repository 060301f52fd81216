"""Rollout executors: what happens between the policy's responses in one rollout sample.

``single_turn`` (MM-Eureka: one response, then the reward) and ``image_tools`` (the policy may
crop and zoom into the images it has seen, over several turns) are built in; a plugin adds its own
through the ``rollout_executor`` kind (:class:`~mm_eureka_plugin.contracts.RolloutExecutor`).
"""

from mm_eureka_plugin.rollouts.chat import continuation
from mm_eureka_plugin.rollouts.image_tools import ImageTools
from mm_eureka_plugin.rollouts.single_turn import SingleTurn
from mm_eureka_plugin.rollouts.types import RolloutPrompt, Turn

__all__ = ["ImageTools", "RolloutPrompt", "SingleTurn", "Turn", "continuation"]
