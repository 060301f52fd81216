"""``openrlhf.trainer.ppo_utils.experience_maker``: dense step rewards and the plugin's advantage weights.

Step rewards: OpenRLHF's ``compute_reward`` (the name this module calls) puts each sample's
(baselined) scalar reward on its last action token. When an experience carries per-token step
rewards (``info[STEP_REWARDS]``, from :mod:`mm_eureka_plugin.patches.samples_generator`), the
patched ``compute_reward``, given that experience's action mask, adds them to that token-level
reward (``compute_advantages_and_returns`` lets it find the experience, then logs their sum),
so OpenRLHF's own ``get_cumulative_returns`` turns them into returns-to-go: token t's return is
the final reward plus every step reward at or after t. The estimators this is valid with are
:data:`mm_eureka_plugin.patches.flags.DENSE_ESTIMATORS` (the recipe check refuses the others).

Advantage weights: with ``--algo.advantage.estimator dr_grpo`` OpenRLHF sets each sample's advantage to its
group-centred reward R - mean(R). When the plugin config chooses an ``advantage_weight``,
``RemoteExperienceMaker.compute_advantages_and_returns`` then multiplies every sample's
advantages by omega from the weight function, computed over the whole rollout batch's
``[num_prompts, n_samples]`` reward matrix (the CPGD paper's intent; its code used one rank's share).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from contextvars import ContextVar
from types import ModuleType

import torch

from mm_eureka_plugin.config import PluginConfig
from mm_eureka_plugin.patches.samples_generator import STEP_REWARDS


def apply_advantage_weights(experiences: list, n_samples: int, weight_fn) -> None:
    """Scale each sample's advantages by ``weight_fn`` of the global reward matrix, in place.

    Samples are matched to prompt groups through ``experience.index`` (their position in prompt
    order, n_samples consecutive samples per prompt), as OpenRLHF's own group statistics do.
    """
    lengths = [len(exp.index) for exp in experiences]
    indices = torch.tensor(list(itertools.chain.from_iterable(exp.index for exp in experiences)))
    flat = torch.cat([exp.rewards.float() for exp in experiences])
    rewards = torch.empty_like(flat)
    rewards[indices] = flat
    matrix = rewards.reshape(-1, n_samples)
    weights = torch.as_tensor(weight_fn(matrix), dtype=torch.float32)
    if weights.shape != matrix.shape:
        raise ValueError(
            f"advantage_weight returned shape {tuple(weights.shape)} for rewards of shape {tuple(matrix.shape)}."
        )
    for exp, weight in zip(experiences, weights.reshape(-1)[indices].split(lengths), strict=True):
        weight = weight.to(exp.advantages.device)
        exp.advantages = exp.advantages * weight.unsqueeze(-1).to(exp.advantages.dtype)
        exp.info["advantage_weight"] = weight


_experiences: ContextVar[Sequence] = ContextVar("mm_eureka_experiences", default=())
"""The experiences ``compute_advantages_and_returns`` is working on, for ``compute_reward`` to find
the one whose action mask it is given (OpenRLHF calls it once per experience)."""


def check_step_rewards(experiences: list) -> None:
    """Refuse step rewards (``info[STEP_REWARDS]``) whose shape is not their action mask's."""
    for exp in experiences:
        steps = exp.info.get(STEP_REWARDS)
        if steps is not None and steps.shape != exp.action_mask.shape:
            raise ValueError(
                f"step rewards of shape {tuple(steps.shape)} do not match the action mask {tuple(exp.action_mask.shape)}"
            )


def step_rewards_of(action_mask: torch.Tensor) -> torch.Tensor | None:
    """The step rewards of the experience (of :data:`_experiences`) whose action mask is ``action_mask``."""
    return next((e.info.get(STEP_REWARDS) for e in _experiences.get() if e.action_mask is action_mask), None)


def log_step_rewards(experiences: list) -> None:
    """Replace each experience's per-token ``info[STEP_REWARDS]`` with its sum, ``info["step_reward_sum"]``
    (OpenRLHF logs ``info`` per sample)."""
    for exp in experiences:
        steps = exp.info.pop(STEP_REWARDS, None)
        if steps is not None:
            exp.info["step_reward_sum"] = steps.sum(-1)


def patch(module: ModuleType) -> None:
    maker = module.RemoteExperienceMaker
    original = maker.compute_advantages_and_returns
    original_compute_reward = module.compute_reward

    @functools.wraps(original_compute_reward)
    def compute_reward(r, kl_coef, kl, action_mask=None, reward_clip_range=None):
        reward = original_compute_reward(r, kl_coef, kl, action_mask=action_mask, reward_clip_range=reward_clip_range)
        steps = step_rewards_of(action_mask)
        if steps is not None:
            reward = reward + steps.to(device=reward.device, dtype=reward.dtype) * action_mask
        return reward

    @functools.wraps(original)
    def compute_advantages_and_returns(self, experiences, *args, **kwargs):
        check_step_rewards(experiences)
        token = _experiences.set(experiences)
        try:
            experiences = original(self, experiences, *args, **kwargs)
        finally:
            _experiences.reset(token)
        log_step_rewards(experiences)
        if not hasattr(self, "_mm_eureka_advantage_weight"):
            self._mm_eureka_advantage_weight = PluginConfig.from_env().build("advantage_weight")
        weight_fn = self._mm_eureka_advantage_weight
        if weight_fn is not None:
            apply_advantage_weights(experiences, self.strategy.args.rollout.n_samples_per_prompt, weight_fn)
        return experiences

    module.compute_reward = compute_reward
    maker.compute_advantages_and_returns = compute_advantages_and_returns
