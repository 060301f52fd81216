"""The weighted composition of rewards."""

from __future__ import annotations

import math

import pytest

from mm_eureka_plugin.registry import Component, ComponentError
from mm_eureka_plugin.rewards import AccuracyReward, FormatReward, RewardSample, WeightedReward

ACCURACY = "mm_eureka_plugin.rewards.accuracy:AccuracyReward"
FORMAT = "mm_eureka_plugin.rewards.format:FormatReward"

CUSTOM = '''
from mm_eureka_plugin.rewards import RewardResult


def scored(value: float = 0.25):
    """A constant reward with a score and step rewards."""
    return lambda samples: [
        RewardResult(value, {"constant": value}, score=0.75, step_rewards=[(3, 1.0), (1, 2.0)]) for _ in samples
    ]


def broken():
    """Always fails."""
    def reward(samples):
        raise RuntimeError("boom")
    return reward
'''


@pytest.fixture
def builtins(fresh_registry):
    """The registry with accuracy, format and weighted registered (as builtin.py does)."""
    registry = fresh_registry.registry()
    for name, factory in {"accuracy": AccuracyReward, "format": FormatReward, "weighted": WeightedReward}.items():
        if name not in registry.components["reward"]:
            registry.add(Component("reward", name, factory, "mm-eureka-plugin", ""))
    return fresh_registry


@pytest.fixture
def custom(tmp_path):
    path = tmp_path / "custom.py"
    path.write_text(CUSTOM)
    return str(path)


def samples():
    return [
        RewardSample("<think>2+3</think><answer>5</answer>", "5"),  # right, formatted
        RewardSample("<think>2+3</think><answer>6</answer>", "5"),  # wrong, formatted
        RewardSample("The answer is 5", "5"),  # right, unformatted
    ]


def test_the_default_is_mm_eureka_accuracy_plus_half_format(builtins):
    results = WeightedReward()(samples())
    assert [r.reward for r in results] == [1.5, 0.5, 1.0]
    assert [r.components for r in results] == [
        {"accuracy": 1.0, "format": 1.0},
        {"accuracy": 0.0, "format": 1.0},
        {"accuracy": 1.0, "format": 0.0},
    ]
    assert [r.score for r in results] == [1.0, 0.0, 1.0]  # the accuracy's
    assert all(r.error is None and r.step_rewards is None for r in results)


def test_through_the_registry_with_parameters(builtins):
    reward = builtins.resolve(
        "reward",
        "weighted",
        components=[
            {"name": "accuracy", "weight": 2.0, "timeout": 1.0, "workers": 2},
            {"name": FORMAT, "weight": 0.25},
        ],
    )
    assert [r.reward for r in reward(samples())] == [2.25, 0.25, 2.0]
    assert reward.rewards[0].timeout == 1.0 and reward.weights == [2.0, 0.25]


def test_score_from_names_the_entry_whose_score_is_used(custom):
    entries = [{"name": FORMAT, "weight": 0.5}, {"name": f"{custom}:scored"}, {"name": ACCURACY, "workers": 2}]
    first = WeightedReward(entries)(samples()[:1])[0]
    assert first.score == 0.75  # format has no score; the next one with a score
    chosen = WeightedReward(entries, score_from=ACCURACY)(samples()[:1])[0]
    assert chosen.score == 1.0
    assert chosen.reward == pytest.approx(0.5 + 0.25 + 1.0)


def test_clashing_component_keys_are_prefixed(custom):
    entries = [{"name": f"{custom}:scored", "value": 0.5}, {"name": f"{custom}:scored", "weight": 2.0}]
    result = WeightedReward(entries)(samples()[:1])[0]
    assert result.components == {"constant": 0.5, f"{custom}:scored/constant": 0.25}
    assert result.reward == pytest.approx(0.5 + 2.0 * 0.25)
    assert result.step_rewards == [(1, 2.0), (1, 4.0), (3, 1.0), (3, 2.0)]  # scaled by weight, by offset


def test_a_failing_component_scores_zero_and_sets_the_error(custom):
    broken = f"{custom}:broken"
    results = WeightedReward([{"name": FORMAT}, {"name": broken, "weight": 3.0}])(samples())
    assert [r.reward for r in results] == [1.0, 1.0, 0.0]
    assert results[0].components == {"format": 1.0, broken: 0.0}
    assert results[0].error == f"{broken}: RuntimeError: boom"


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ([], "non-empty list"),
        ({"name": "format"}, "non-empty list"),
        (["format"], r"components\[0\] must be a mapping"),
        ([{"weight": 1.0}], r"components\[0\] needs 'name'"),
        ([{"name": FORMAT}, {"name": FORMAT, "weight": "high"}], r"components\[1\] \(.*\): 'weight' must be"),
        ([{"name": FORMAT, "weight": math.inf}], "'weight' must be a finite number"),
        ([{"name": FORMAT, "weight": True}], "'weight' must be a finite number"),
        ([{"name": FORMAT}, {"name": "no_such_reward"}], r"components\[1\] \('no_such_reward'\): unknown reward"),
        ([{"name": FORMAT, "strict": True}], r"components\[0\] .*unknown parameter 'strict'"),
        ([{"name": ACCURACY, "on_bad_gold": "skip"}], r"components\[0\] .*on_bad_gold"),
    ],
)
def test_bad_entries_are_named(builtins, components, message):
    with pytest.raises(ComponentError, match=message):
        WeightedReward(components)


def test_score_from_must_name_a_component(builtins):
    with pytest.raises(ComponentError, match="score_from 'accuracy' is not one of its components: format"):
        WeightedReward([{"name": "format"}], score_from="accuracy")


PRM = "mm_eureka_plugin.rewards.prm:PRMReward"


def test_dense_and_uses_server_when_any_entry_is(builtins):
    rules = WeightedReward()
    assert not rules.dense and not rules.uses_server
    local_dense = WeightedReward([{"name": "format"}, {"name": PRM, "mode": "dense", "path": "unused"}])
    assert local_dense.dense and not local_dense.uses_server
    served = WeightedReward([{"name": "format"}, {"name": PRM}])
    assert served.uses_server and not served.dense
    nested = WeightedReward([{"name": "format"}, {"name": "weighted", "components": [{"name": PRM, "mode": "dense"}]}])
    assert nested.dense and nested.uses_server


def test_uses_images_when_any_entry_reads_them_or_does_not_say(builtins, tmp_path):
    assert not WeightedReward().uses_images  # accuracy and format read text only
    assert WeightedReward([{"name": "format"}, {"name": PRM}]).uses_images
    silent = tmp_path / "silent_reward.py"
    silent.write_text("def make():\n    return lambda samples: [0.0 for _ in samples]\n")
    assert WeightedReward([{"name": "accuracy"}, {"name": f"{silent}:make"}]).uses_images
