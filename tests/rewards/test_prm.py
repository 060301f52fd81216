"""The prm reward on the tiny PRM: sequence and dense modes, the fallback, and mixing with rule rewards."""

from __future__ import annotations

import pytest
from PIL import Image

from mm_eureka_plugin.prm.scorer import PRMInput, PRMScorer
from mm_eureka_plugin.registry import ComponentError, resolve
from mm_eureka_plugin.rewards import RewardSample

RESPONSE = "<think><step>The square has side 3.</step>\n<step>Its area is 3 * 3 = 9.</step></think><answer>9</answer>"


@pytest.fixture(scope="module")
def prompt(tiny_vlm_dir):
    from mm_eureka_plugin.checkpoints import load_processor

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Area of the square?"}]}]
    return load_processor(tiny_vlm_dir)[0].apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@pytest.fixture(scope="module")
def expected(prm_dir, prompt):
    """The PRM's own step scores for RESPONSE (steps as the tags splitter cuts them)."""
    steps = ["The square has side 3.", "Its area is 3 * 3 = 9.", "9"]
    (scores,) = PRMScorer(prm_dir).score([PRMInput(prompt, steps, [image()], templated=True)])
    return scores


def image():
    return Image.new("RGB", (56, 56), (200, 30, 30))


def sample(prompt, response=RESPONSE, label="9"):
    return RewardSample(response=response, label=label, prompt=prompt, images=[image()])


def test_sequence_mode_rewards_the_aggregate_of_the_prm_step_scores(prm_dir, prompt, expected):
    reward = resolve("reward", "prm", path=str(prm_dir), aggregator="min")
    (result,) = reward([sample(prompt)])
    assert len(expected) == 3
    assert result.reward == pytest.approx(min(expected), abs=1e-6)
    assert result.components == {"prm": result.reward, "prm_failed": 0.0}
    assert result.step_rewards is None and result.error is None
    (last,) = resolve("reward", "prm", path=str(prm_dir), aggregator="last")([sample(prompt)])
    assert last.reward == pytest.approx(expected[-1], abs=1e-6)


def test_dense_mode_credits_each_score_at_the_end_of_its_step(prm_dir, prompt, expected):
    reward = resolve("reward", "prm", path=str(prm_dir), mode="dense")
    assert reward.dense
    (result,) = reward([sample(prompt)])
    assert result.reward == 0.0  # the credit is in the step rewards
    ends = [offset for offset, _ in result.step_rewards]
    texts = ["The square has side 3.", "Its area is 3 * 3 = 9.", "<answer>9"]
    assert all(RESPONSE[:end].endswith(text) for end, text in zip(ends, texts, strict=True))
    assert [value for _, value in result.step_rewards] == pytest.approx(expected, abs=1e-6)
    assert result.components["prm"] == pytest.approx(min(expected), abs=1e-6)


def test_mixed_with_rule_rewards_by_weight(prm_dir, prompt, expected, ready):
    reward = resolve(
        "reward",
        "weighted",
        components=[{"name": "accuracy", "weight": 1.0}, {"name": "prm", "weight": 0.5, "path": str(prm_dir)}],
    )
    right, wrong = reward([sample(prompt), sample(prompt, label="10")])
    assert right.reward == pytest.approx(1.0 + 0.5 * min(expected), abs=1e-6)
    assert wrong.reward == pytest.approx(0.5 * min(expected), abs=1e-6)
    assert right.score == 1.0 and wrong.score == 0.0  # filtering still sees the accuracy
    assert right.components["prm_failed"] == 0.0


def test_a_response_without_steps_gets_the_fallback_without_counting_a_failure(prm_dir, prompt):
    reward = resolve("reward", "prm", path=str(prm_dir), fallback=-1.0)
    (result,) = reward([sample(prompt, response="   ")])
    assert result.reward == -1.0 and result.components == {"prm": -1.0, "prm_failed": 0.0}


def test_without_a_server_or_a_path_every_sample_falls_back_and_the_failure_is_counted(prompt):
    reward = resolve("reward", "prm", fallback=0.25)
    assert reward.uses_server
    results = reward([sample(prompt), sample(prompt, response="")])
    assert results[0].reward == 0.25 and results[0].components == {"prm": 0.25, "prm_failed": 1.0}
    assert "give the prm reward a 'path'" in results[0].error
    assert results[1].components["prm_failed"] == 0.0  # nothing to score: not a failure


def test_a_broken_checkpoint_falls_back_instead_of_raising(tmp_path, prompt):
    (result,) = resolve("reward", "prm", path=str(tmp_path / "missing"))([sample(prompt)])
    assert result.reward == 0.0 and result.components["prm_failed"] == 1.0
    assert result.error.startswith("PRM could not score")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mode": "tokens"}, "mode must be one of sequence, dense"),
        ({"fallback": float("nan")}, "fallback must be a finite number"),
        ({"timeout_s": 0}, "timeout_s must be a positive number"),
        ({"aggregator": "median"}, "median"),
        ({"splitter": "sentences"}, "sentences"),
    ],
)
def test_bad_parameters_are_refused_when_the_recipe_is_checked(params, message):
    with pytest.raises(ComponentError, match=message):
        resolve("reward", "prm", **params)


@pytest.mark.parametrize("aggregator", ["sum_logit", "sum_logprob"])
def test_saturated_step_scores_stood_in_give_a_bounded_reward_not_the_sentinel(prm_dir, prompt, aggregator):
    reward = resolve("reward", "prm", path=str(prm_dir), aggregator=aggregator)
    reward._score = lambda items: [[1.0, 0.0, 0.5]]  # a bf16 softmax rounded to exactly 1 and 0
    (result,) = reward([sample(prompt)])
    assert abs(result.reward) < 30  # log(1e-6) = -13.8 per saturated step, not +-9999
    clamped = [1 - 1e-6, 1e-6, 0.5]
    assert result.reward == pytest.approx(resolve("prm_aggregator", aggregator)(clamped), rel=1e-9)
