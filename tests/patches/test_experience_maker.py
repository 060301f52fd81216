"""Advantage weights inside OpenRLHF's real RemoteExperienceMaker.compute_advantages_and_returns."""

import types

import pytest
import torch


def make_experiences(rewards_by_sample, order, n_tokens=3):
    """Split samples (in prompt order) into two Experiences, shuffled as OpenRLHF's rollout may be."""
    from openrlhf.trainer.ppo_utils.experience import Experience

    experiences = []
    for part in (order[: len(order) // 2], order[len(order) // 2 :]):
        mask = torch.ones(len(part), n_tokens, dtype=torch.bool)
        mask[0, -1] = False
        experiences.append(
            Experience(
                rewards=torch.tensor([rewards_by_sample[i] for i in part]),
                action_mask=mask,
                kl=torch.zeros(len(part), n_tokens),
                index=list(part),
                info={},
            )
        )
    return experiences


def maker(args):
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    # The real class and method; its constructor only wires Ray actor groups we do not need here.
    obj = object.__new__(RemoteExperienceMaker)
    obj.strategy = types.SimpleNamespace(args=args)
    obj.args = args
    obj.advantage_estimator = args.algo.advantage.estimator
    obj.kl_ctl = types.SimpleNamespace(value=0.0)
    return obj


def test_clip_filter_like_weights_scale_group_centred_advantages(plugin_env, openrlhf_args):
    plugin_env({"advantage_weight": {"name": "clip_filter_like", "max_weight": 3.0}})
    args = openrlhf_args("--algo.advantage.estimator", "dr_grpo", "--rollout.n_samples_per_prompt", "4")
    # 3 prompts x 4 samples: prompts 0 and 2 informative, prompt 1 all right.
    rewards = [1.0, 0.0, 0.0, 0.0, 1.5, 1.5, 1.5, 1.5, 1.0, 1.0, 0.0, 1.0]
    order = [5, 0, 11, 3, 8, 1, 2, 10, 4, 9, 6, 7]
    experiences = maker(args).compute_advantages_and_returns(make_experiences(rewards, order))

    groups = torch.tensor(rewards).reshape(3, 4)
    centred = (groups - groups.mean(-1, keepdim=True)).reshape(-1)
    weight = torch.tensor([1.5, 1.0, 1.5]).repeat_interleave(4)  # min(3, 3 prompts / 2 informative)
    for exp in experiences:
        for row, sample in enumerate(exp.index):
            valid = exp.action_mask[row]
            assert exp.advantages[row][valid].tolist() == pytest.approx(
                [(weight * centred)[sample].item()] * int(valid.sum())
            )
            assert exp.info["advantage_weight"][row].item() == weight[sample].item()


def test_std_weight_reproduces_group_norm(plugin_env, openrlhf_args):
    rewards = [1.0, 0.0, 0.5, 0.0, 2.0, 1.0, 1.0, 0.0]
    order = list(range(8))
    plugin_env({"advantage_weight": "std"})
    weighted = maker(openrlhf_args("--algo.advantage.estimator", "dr_grpo", "--rollout.n_samples_per_prompt", "4"))
    ours = weighted.compute_advantages_and_returns(make_experiences(rewards, order))
    plugin_env({})
    upstream = maker(openrlhf_args("--algo.advantage.estimator", "group_norm", "--rollout.n_samples_per_prompt", "4"))
    theirs = upstream.compute_advantages_and_returns(make_experiences(rewards, order))
    for a, b in zip(ours, theirs):
        assert torch.allclose(a.advantages, b.advantages, atol=1e-5)
