"""The think/answer format reward."""

from __future__ import annotations

import pytest

from mm_eureka_plugin.rewards import FormatReward, RewardResult, RewardSample


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<think>2+3=5</think><answer>5</answer>", 1.0),
        ("<think>\nline one\nline two\n</think>\n\n<answer>\n$5$\n</answer>", 1.0),
        ("  \n<think>t</think> <answer>5</answer>\n ", 1.0),  # surrounding whitespace
        ("<think>t</think><answer>5</answer> Hope this helps.", 0.0),  # text outside
        ("Sure! <think>t</think><answer>5</answer>", 0.0),
        ("<think></think><answer>5</answer>", 0.0),  # empty reasoning
        ("<think>t</think><answer></answer>", 0.0),  # empty answer
        ("<think>t</think> so <answer>5</answer>", 0.0),  # text between
        ("<answer>5</answer><think>t</think>", 0.0),  # order
        ("<think>t</think><answer>5</answer><answer>6</answer>", 0.0),  # a tag twice
        ("<think>a<think>b</think><answer>5</answer>", 0.0),
        ("<think>t</think><answer>5", 0.0),  # unclosed
        ("The answer is 5.", 0.0),
        ("", 0.0),
    ],
)
def test_format(response, expected):
    assert FormatReward()([RewardSample(response, "5")]) == [
        RewardResult(reward=expected, components={"format": expected}, score=None)
    ]


def test_allow_outer_text_accepts_text_around_the_shape_as_mm_eureka_did():
    reward = FormatReward(allow_outer_text=True)
    assert reward.check("Sure! <think>t</think><answer>5</answer> Hope this helps.")
    assert not reward.check("Sure! <think>t</think><answer>5</answer><answer>6</answer>")
    assert not reward.check("<think>t</think> so <answer>5</answer>")


def test_a_long_response_is_checked_quickly():
    response = "<think>" + "<answer>" * 50_000 + "</think>"
    assert not FormatReward().check(response)
    assert FormatReward().check("<think>" + "x" * 1_000_000 + "</think><answer>5</answer>")
