"""The PRM scorer on the tiny Qwen2.5-VL: one forward per solution equals one per step prefix."""

from __future__ import annotations

import pytest
from PIL import Image

from mm_eureka_plugin.prm.scorer import (
    PRM_TOKEN,
    PRMCheckpointError,
    PRMInput,
    PRMScorer,
    tagged_solution,
)

STEPS = [
    "The triangle has sides 3 and 4.",
    "By Pythagoras the hypotenuse is sqrt(9 + 16) = 5.",
    "So the perimeter is 3 + 4 + 5 = 12.",
    "The answer is 12.",
]


@pytest.fixture(scope="module")
def scorer(prm_dir):
    return PRMScorer(prm_dir, batch_size=4)


def image(colour):
    return Image.new("RGB", (56, 84), colour)


def test_the_checkpoint_has_the_tag_and_its_processor_still_handles_images(prm_dir, tiny_vlm_dir):
    from mm_eureka_plugin.checkpoints import load_processor

    processor = load_processor(prm_dir)[0]
    assert len(processor.tokenizer.encode(PRM_TOKEN, add_special_tokens=False)) == 1
    batch = processor(
        text=["<|vision_start|><|image_pad|><|vision_end|>hi"], images=[image("red")], return_tensors="pt"
    )
    assert batch["image_grid_thw"].tolist() == [[1, 6, 4]]
    with pytest.raises(PRMCheckpointError, match="make_prm_checkpoint"):
        PRMScorer(tiny_vlm_dir)  # no tag in the base checkpoint


def test_tags_follow_every_step_and_a_step_cannot_smuggle_one_in():
    assert tagged_solution(["a ", f"b{PRM_TOKEN}c"]) == f"a{PRM_TOKEN}\nbc{PRM_TOKEN}\n"


def test_one_forward_gives_the_same_scores_as_one_forward_per_prefix(scorer):
    item = PRMInput("What is the perimeter?", STEPS, [image("blue")])
    (scores,) = scorer.score([item])
    assert len(scores) == len(STEPS) and all(0 < s < 1 for s in scores)
    prefixes = [PRMInput(item.prompt, STEPS[: k + 1], item.images) for k in range(len(STEPS))]
    per_prefix = [result[-1] for result in scorer.score(prefixes)]
    assert scores == pytest.approx(per_prefix, abs=1e-5)
    assert max(scores) - min(scores) > 1e-4  # the steps are told apart, not one value repeated


def test_batching_and_images_change_nothing_but_the_image_matters(scorer):
    items = [
        PRMInput("What is the perimeter?", STEPS[:2], [image("blue")]),
        PRMInput("What is the perimeter?", STEPS, [image("blue")]),
        PRMInput("Add them.", STEPS[1:3], []),
    ]
    together = scorer.score(items)
    alone = [scorer.score([item])[0] for item in items]
    for got, expected in zip(together, alone):
        assert got == pytest.approx(expected, abs=1e-5)
    other_image = scorer.score([PRMInput(items[1].prompt, STEPS, [image("yellow")])])[0]
    assert other_image != pytest.approx(together[1], abs=1e-6)


def test_a_solution_without_steps_scores_nothing(scorer):
    assert scorer.score([PRMInput("Q?", [], [])]) == [[]]
