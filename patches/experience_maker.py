"""``openrlhf.trainer.ppo_utils.experience_maker``: dense step rewards and the plugin's advantage weights.

Step rewards: OpenRLHF's ``compute_reward`` (the name this module calls) puts each sample's
(baselined) scalar reward on its last action token. When the experiences carry per-token step
rewards (``info[STEP_REWARDS]``, from :mod:`mm_eureka_plugin.patches.samples_generator`),
``compute_advantages_and_returns`` takes them out of ``info`` and the patched ``compute_reward``
adds them to that token-level reward, so OpenRLHF's own ``get_cumulative_returns`` turns them into
returns-to-go: token t's return is the final reward plus every step reward at or after t. The
estimators this is valid with are :data:`mm_eureka_plugin.config.DENSE_ESTIMATORS` (the recipe
check refuses the others).

Advantage weights: with ``--algo.advantage.estimator dr_grpo`` OpenRLHF sets each sample's advantage to its
group-centred reward R - mean(R). When the plugin config chooses an ``advantage_weight``,
``RemoteExperienceMaker.compute_advantages_and_returns`` then multiplies every sample's
advantages by omega from the weight function, computed over the whole rollout batch's
``[num_prompts, n_samples]`` reward matrix (the CPGD paper's intent; its code used one rank's share).
"""

from __future__ import annotations

import functools
import itertools
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


_step_rewards: dict[int, torch.Tensor] = {}
"""While ``compute_advantages_and_returns`` runs: ``id(experience.action_mask)`` -> its step rewards."""


def take_step_rewards(experiences: list) -> None:
    """Move each experience's ``info[STEP_REWARDS]`` to :data:`_step_rewards`, keyed by its action mask;
    log each sample's sum of step rewards as ``info["step_reward_sum"]``."""
    for exp in experiences:
        steps = exp.info.pop(STEP_REWARDS, None)
        if steps is None:
            continue
        if steps.shape != exp.action_mask.shape:
            raise ValueError(
                f"step rewards of shape {tuple(steps.shape)} do not match the action mask {tuple(exp.action_mask.shape)}"
            )
        _step_rewards[id(exp.action_mask)] = steps
        exp.info["step_reward_sum"] = steps.sum(-1)


def patch(module: ModuleType) -> None:
    maker = module.RemoteExperienceMaker
    original = maker.compute_advantages_and_returns
    original_compute_reward = module.compute_reward

    @functools.wraps(original_compute_reward)
    def compute_reward(r, kl_coef, kl, action_mask=None, reward_clip_range=None):
        reward = original_compute_reward(r, kl_coef, kl, action_mask=action_mask, reward_clip_range=reward_clip_range)
        steps = _step_rewards.get(id(action_mask))
        if steps is not None:
            reward = reward + steps.to(device=reward.device, dtype=reward.dtype) * action_mask
        return reward

    @functools.wraps(original)
    def compute_advantages_and_returns(self, experiences, *args, **kwargs):
        take_step_rewards(experiences)
        try:
            experiences = original(self, experiences, *args, **kwargs)
        finally:
            _step_rewards.clear()
        if not hasattr(self, "_mm_eureka_advantage_weight"):
            self._mm_eureka_advantage_weight = PluginConfig.from_env().build("advantage_weight")
        weight_fn = self._mm_eureka_advantage_weight
        if weight_fn is not None:
            apply_advantage_weights(experiences, self.strategy.args.rollout.n_samples_per_prompt, weight_fn)
        return experiences

    module.compute_reward = compute_reward
    maker.compute_advantages_and_returns = compute_advantages_and_returns
