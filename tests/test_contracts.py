"""The component Protocols: every hook is typed by one, and every built-in component has its kind's call shape."""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Callable, Mapping

import pytest
import torch

from mm_eureka_plugin import builtin, contracts, hookspecs
from mm_eureka_plugin.data.records import BadRow, PromptRecord
from mm_eureka_plugin.prm.judges import OpenAICompatibleJudge
from mm_eureka_plugin.prm.steps import Step
from mm_eureka_plugin.rewards.types import RewardResult, RewardSample


def protocol(kind: str) -> type:
    """The Protocol that the factories of ``kind``'s hook return, read from the hook's annotation."""
    hint = typing.get_type_hints(getattr(hookspecs, hookspecs.KIND_HOOKS[kind]))["return"]
    assert typing.get_origin(hint) is dict, hint
    key, factory = typing.get_args(hint)
    assert key is str and typing.get_origin(factory) is Callable, hint
    return typing.get_args(factory)[-1]


def test_every_hook_returns_factories_of_its_own_runtime_checkable_protocol():
    protocols = [protocol(kind) for kind in hookspecs.KIND_HOOKS]
    assert len(set(protocols)) == len(protocols)
    assert contracts.PROTOCOLS == dict(zip(hookspecs.KIND_HOOKS, protocols))  # what factories are checked against
    for shape in protocols:
        assert getattr(contracts, shape.__name__) is shape
        assert not isinstance(object(), shape)  # a TypeError if the Protocol is not runtime-checkable


def test_an_object_without_its_kinds_methods_is_not_an_instance():
    def plain(*args):
        return []

    assert isinstance(plain, contracts.Reward)
    assert not isinstance(plain, contracts.DataFormat)
    assert not isinstance(plain, contracts.Judge)


# --- every built-in component on a tiny input of its kind --------------------------------------


def check_reward(reward, tmp_path):
    samples = [
        RewardSample("<think>2+3</think><answer>5</answer>", "5"),
        RewardSample("<think>2+3</think><answer>6</answer>", "5"),
        RewardSample("", "5"),
    ]
    results = reward(samples)
    assert len(results) == len(samples)
    for result in results:
        assert isinstance(result, RewardResult) or type(result) is float
        assert math.isfinite(result.reward if isinstance(result, RewardResult) else result)


def check_policy_loss(loss_fn, tmp_path):
    log_probs = torch.randn(2, 3, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    loss, metrics = loss_fn(log_probs, log_probs.detach() + 0.1, torch.randn(2, 3), mask, num_tokens=None)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0
    loss.backward()
    assert log_probs.grad is not None
    assert isinstance(metrics, Mapping) and metrics
    for key, value in metrics.items():
        assert isinstance(key, str) and torch.as_tensor(value).dim() == 0


def check_advantage_weight(weight_fn, tmp_path):
    rewards = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    weights = weight_fn(rewards)
    assert isinstance(weights, torch.Tensor) and weights.shape == rewards.shape


def check_data_format(fmt, tmp_path):
    path = tmp_path / "rows.jsonl"
    good = {
        "message": json.dumps([{"role": "user", "content": "What is 2 + 3?"}]),
        "question": "What is 2 + 3?",
        "prompt": "What is 2 + 3?",
        "answer": "5",
        "label": "5",
    }
    path.write_text(json.dumps(good) + "\n" + json.dumps({"answer": "5"}) + "\n")
    items = list(fmt.read(path))
    assert [type(item) for item in items] == [PromptRecord, BadRow]
    assert [item.row for item in items] == [1, 2]


def check_step_splitter(split, tmp_path):
    solution = "<step>a = 2</step>\n\nStep 1: b = 3\n\n<answer>5</answer>"
    steps = split(solution)
    assert isinstance(steps, list) and steps
    for step in steps:
        assert isinstance(step, Step) and solution[step.start : step.end] == step.text
    assert isinstance(split.join([step.text for step in steps]), str)


def check_prm_aggregator(aggregate, tmp_path):
    value = aggregate([0.5, 0.9])
    assert type(value) is float and math.isfinite(value)


def check_judge(judge, tmp_path):
    assert judge.check_gold("5") is None
    if isinstance(judge, OpenAICompatibleJudge):
        return  # it asks an LLM endpoint: tests/prm/test_judges.py serves one
    assert judge(["<answer>5</answer>", "<answer>6</answer>"], "5") == [True, False]


def check_rollout_executor(executor, tmp_path):
    from PIL import Image

    from mm_eureka_plugin.rollouts import RolloutPrompt, Turn

    image = Image.new("RGB", (56, 56), (200, 30, 30))
    episode = executor.start(RolloutPrompt(prompt="What colour?", images=[image], source_images=[image], label="red"))
    turn = episode.step("<crop>0, 0, 28, 28</crop>")
    assert isinstance(turn, Turn) and turn.problem() is None
    assert set(turn.metrics) <= set(getattr(executor, "metric_keys", ()))
    assert episode.step("<answer>red</answer>").done


CHECKS = {
    "reward": check_reward,
    "policy_loss": check_policy_loss,
    "advantage_weight": check_advantage_weight,
    "data_format": check_data_format,
    "step_splitter": check_step_splitter,
    "prm_aggregator": check_prm_aggregator,
    "judge": check_judge,
    "rollout_executor": check_rollout_executor,
}
REQUIRED_PARAMS = {("judge", "openai_compatible"): {"url": "http://127.0.0.1:9/v1", "model": "judge"}}
BUILTINS = {
    (kind, name): factory
    for kind, hook in hookspecs.KIND_HOOKS.items()
    for name, factory in getattr(builtin, hook)().items()
}


def test_every_kind_has_a_check_and_a_builtin():
    assert set(CHECKS) == set(hookspecs.KIND_HOOKS) == {kind for kind, _ in BUILTINS}


@pytest.mark.parametrize(("kind", "name"), list(BUILTINS), ids=[f"{k}:{n}" for k, n in BUILTINS])
def test_builtin_component_has_its_kinds_call_shape(kind, name, tmp_path):
    component = BUILTINS[kind, name](**REQUIRED_PARAMS.get((kind, name), {}))
    assert isinstance(component, protocol(kind))
    CHECKS[kind](component, tmp_path)
