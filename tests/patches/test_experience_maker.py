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


def rollout_response(prompt_len, response_len, reward, step_rewards=None):
    """What the rollout executor returns for one sample (observation = prompt then response tokens)."""
    response = {
        "prompt": "p",
        "label": "l",
        "images": None,
        "mm_train_inputs": None,
        "reward": reward,
        "scores": reward,
        "observation_tokens": list(range(100, 100 + prompt_len + response_len)),
        "action_ranges": [(prompt_len, prompt_len + response_len)],
        "rollout_log_probs": None,
        "truncated": False,
        "extra_logs": {},
    }
    if step_rewards is not None:
        response["step_rewards"] = step_rewards
    return response


def test_step_rewards_become_returns_to_go_through_openrlhfs_own_functions(plugin_env, openrlhf_args):
    from openrlhf.trainer.ppo_utils.experience import Experience
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    plugin_env({})
    args = openrlhf_args("--algo.advantage.estimator", "rloo", "--rollout.n_samples_per_prompt", "2")
    # 2 prompts x 2 samples; prompt 3 tokens; step rewards at observation indices (the step's last token).
    samples = [
        (5, 1.0, [(4, 0.5), (7, 0.25)]),  # response tokens 3..7: steps end at tokens 4 and 7 (the last)
        (3, 0.0, [(5, 0.75)]),
        (4, 0.0, []),  # a response without steps: nothing but the final reward
        (4, 1.0, [(3, 0.5), (5, 0.5), (6, 0.5)]),
    ]
    generator = object.__new__(SamplesGenerator)  # the real method; no dataloaders needed
    singles = []
    for index, (length, reward, steps) in enumerate(samples):
        exp = generator._process_response_into_experience(rollout_response(3, length, reward, steps), max_len=1024)
        exp.index = [index]
        singles.append(exp)
    batches = [Experience.concat_experiences([singles[i] for i in part], 0) for part in ([0, 3], [2, 1])]
    for exp in batches:
        exp.kl = torch.zeros(exp.action_mask.shape)  # make_experience's KL; no reference model here
    batches = maker(args).compute_advantages_and_returns(batches)

    for exp in batches:
        assert "step_rewards" not in exp.info  # taken out before OpenRLHF logs info
        for row, sample in enumerate(exp.index):
            length, reward, steps = samples[sample]
            other = samples[sample ^ 1][1]
            per_token = [0.0] * exp.action_mask.shape[1]
            per_token[2 + length - 1] += reward - other  # rloo's baselined reward on the last action token
            for index, value in steps:
                per_token[index - 1] += value  # action position = observation index - 1
            expected = [sum(per_token[t:]) for t in range(len(per_token))]  # gamma 1
            assert exp.returns[row].tolist() == pytest.approx(expected)
            assert exp.advantages[row].tolist() == pytest.approx(expected)
            assert exp.info["step_reward_sum"][row].item() == pytest.approx(sum(v for _, v in steps))


def test_without_step_rewards_the_final_reward_alone_is_credited(plugin_env, openrlhf_args):
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    plugin_env({})
    args = openrlhf_args("--algo.advantage.estimator", "rloo", "--rollout.n_samples_per_prompt", "2")
    generator = object.__new__(SamplesGenerator)
    exps = [generator._process_response_into_experience(rollout_response(3, 4, r), max_len=1024) for r in (1.0, 0.0)]
    for i, exp in enumerate(exps):
        exp.index, exp.kl = [i], torch.zeros(exp.action_mask.shape)
        assert "step_rewards" not in exp.info
    first, second = maker(args).compute_advantages_and_returns(exps)
    assert first.returns[0].tolist() == pytest.approx([1.0] * 6)  # the prompt positions are masked later
    assert second.returns[0].tolist() == pytest.approx([-1.0] * 6)
