"""``openrlhf.trainer.ppo_utils.samples_generator``: step rewards travel from rollout to experience.

With a dense reward (e.g. ``prm`` with ``mode: dense``) the rollout executor returns
``response["step_rewards"]``: ``(index into the observation tokens, value)`` pairs, one per step.
``SamplesGenerator._process_response_into_experience`` turns them into a per-token tensor aligned
with the sample's ``action_mask`` (action position = observation index - 1, as OpenRLHF shifts
the mask) and keeps it in ``experience.info[STEP_REWARDS]``, which OpenRLHF pads and
concatenates with the other per-sample fields; the experience maker patch takes it out again
and credits it (:mod:`mm_eureka_plugin.patches.experience_maker`). Without step rewards the
method behaves as upstream.
"""

from __future__ import annotations

import functools
from types import ModuleType

import torch

STEP_REWARDS = "step_rewards"
"""Key of the step rewards in the executor's output and in ``experience.info``."""


def per_token_step_rewards(step_rewards: list, action_length: int) -> torch.Tensor:
    """A ``[1, action_length]`` tensor with each value at its token's action position (summed when two
    steps end on one token; steps cut off by truncation are dropped, as their tokens are)."""
    dense = torch.zeros(1, action_length, dtype=torch.float32)
    for index, value in step_rewards:
        position = int(index) - 1
        if 0 <= position < action_length:
            dense[0, position] += float(value)
    return dense


def patch(module: ModuleType) -> None:
    generator = module.SamplesGenerator
    original = generator._process_response_into_experience

    @functools.wraps(original)
    def _process_response_into_experience(self, response, **generate_kwargs):
        experience = original(self, response, **generate_kwargs)
        if STEP_REWARDS in response:
            length = experience.action_mask.shape[-1]
            experience.info[STEP_REWARDS] = per_token_step_rewards(response[STEP_REWARDS], length)
        return experience

    generator._process_response_into_experience = _process_response_into_experience
