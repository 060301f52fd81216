"""``openrlhf.trainer.ppo_utils.experience_maker``: the plugin's advantage weights.

With ``--algo.advantage.estimator dr_grpo`` OpenRLHF sets each sample's advantage to its
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


def patch(module: ModuleType) -> None:
    maker = module.RemoteExperienceMaker
    original = maker.compute_advantages_and_returns

    @functools.wraps(original)
    def compute_advantages_and_returns(self, experiences, *args, **kwargs):
        experiences = original(self, experiences, *args, **kwargs)
        if not hasattr(self, "_mm_eureka_advantage_weight"):
            self._mm_eureka_advantage_weight = PluginConfig.from_env().build("advantage_weight")
        weight_fn = self._mm_eureka_advantage_weight
        if weight_fn is not None:
            apply_advantage_weights(experiences, self.strategy.args.rollout.n_samples_per_prompt, weight_fn)
        return experiences

    maker.compute_advantages_and_returns = compute_advantages_and_returns
