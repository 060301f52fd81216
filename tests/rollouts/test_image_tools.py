"""The image_tools episode: calls, crops from source pixels, bounds, and errors as feedback."""

import pytest
from PIL import Image

from mm_eureka_plugin.contracts import contract_problem
from mm_eureka_plugin.rollouts import ImageTools, RolloutPrompt
from mm_eureka_plugin.rollouts.image_tools import instructions

BUDGET = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}


def source_image():
    """224x224: black, with a red 56x56 square at (112, 112) and a white pixel column at x = 200."""
    image = Image.new("RGB", (224, 224), (0, 0, 0))
    image.paste((255, 0, 0), (112, 112, 168, 168))
    return image


def start(tools=None, **prompt):
    source = source_image()
    seen = source.resize((56, 56), Image.Resampling.BICUBIC)  # what the budget shows the policy
    fields = {"prompt": "p", "images": [seen], "source_images": [source], "label": "red", **BUDGET, **prompt}
    return (tools or ImageTools()).start(RolloutPrompt(**fields))


def text(turn):
    return " ".join(part["text"] for part in turn.content if part["type"] == "text")


def test_a_crop_in_seen_pixels_comes_from_the_source_pixels_on_the_budget():
    episode = start()
    turn = episode.step("<think>look</think><crop>28, 28, 42, 42</crop>")
    assert not turn.done and turn.problem() is None
    assert turn.metrics == {"turns": 1.0, "tool_calls": 1.0, "tool_errors": 0.0}
    [crop] = turn.images
    # seen (28..42) is source (112..168): the red square, at source resolution (56x56, on the budget)
    assert crop.size == (56, 56)
    assert crop.getpixel((5, 5)) == (255, 0, 0) and crop.getpixel((50, 50)) == (255, 0, 0)
    assert [part["type"] for part in turn.content] == ["text", "image"]
    assert text(turn) == "Image 2: image 1 at [28, 28, 42, 42], 56x56 pixels."


def test_normalized_coordinates_and_a_crop_of_a_crop():
    episode = start(ImageTools(coordinates="normalized"))
    first = episode.step("<crop image=1>[0.5, 0.5, 0.75, 0.75]</crop>")
    assert first.images[0].getpixel((28, 28)) == (255, 0, 0)
    second = episode.step("<crop image=2>(0, 0, 0.5, 0.5)</crop>")  # the red square's top-left quarter
    assert second.problem() is None and second.images[0].getpixel((10, 10)) == (255, 0, 0)
    assert "Image 3: image 2" in text(second)


def test_a_response_without_a_call_ends_the_episode():
    turn = start().step("<answer>red</answer>")
    assert turn.done and turn.metrics == {"turns": 1.0, "tool_calls": 0.0, "tool_errors": 0.0}


@pytest.mark.parametrize(
    "call, reason",
    [
        ("<crop image=3>0, 0, 10, 10</crop>", "there is no image 3; the images are 1 to 1."),
        ("<crop>0, 0, 57, 10</crop>", "the box is outside image 1 (56x56)."),
        ("<crop>-1, 0, 10, 10</crop>", "the box is outside image 1 (56x56)."),
        ("<crop>10, 10, 10, 20</crop>", "the box is empty"),
        ("<crop>10, 10, 10.5, 10.5</crop>", "the box is too small: it would be zoomed 14 times, at most 8."),
        ("<crop>left half</crop>", "is not four numbers"),
        ("<crop>1, 2, 3</crop>", "is not four numbers"),
        ("<crop zoom=2>0, 0, 10, 10</crop>", "unknown attributes 'zoom=2'"),
        ("<crop 0, 0, 10, 10", "write the call as <crop image=N>x1, y1, x2, y2</crop>."),
    ],
)
def test_a_call_that_cannot_be_served_gets_a_short_error_not_an_exception(call, reason):
    turn = start().step(call)
    assert not turn.done and turn.images == [] and turn.problem() is None
    assert turn.metrics == {"turns": 1.0, "tool_calls": 1.0, "tool_errors": 1.0}
    assert text(turn).startswith("Crop failed: ") and reason in text(turn) and len(text(turn)) < 200


def test_turns_and_crops_are_bounded_and_the_last_turn_is_announced():
    episode = start(ImageTools(max_turns=3, max_tool_images=1))
    first = episode.step("<crop>0, 0, 28, 28</crop>")
    assert first.images and "last turn" not in text(first)
    second = episode.step("<crop>0, 0, 28, 28</crop>")  # the one crop is spent
    assert second.images == [] and second.metrics["tool_errors"] == 1.0
    assert "no more crops" in text(second) and text(second).endswith("This is your last turn: give your final answer.")
    third = episode.step("<crop>0, 0, 28, 28</crop>")  # the last response is scored whatever it holds
    assert third.done and third.metrics["tool_calls"] == 1.0


@pytest.mark.parametrize("max_tool_errors", [0, 1])
def test_past_max_tool_errors_a_failed_call_ends_the_episode_and_is_scored(max_tool_errors):
    episode = start(ImageTools(max_turns=4, max_tool_errors=max_tool_errors))
    told = [episode.step("<crop>1, 2, 3</crop>") for _ in range(max_tool_errors)]
    assert all(not turn.done and text(turn).startswith("Crop failed: ") for turn in told)
    assert episode.step("<crop>0, 0, 28, 28</crop>").images  # a call that is served does not count
    last = episode.step("<crop>1, 2, 3</crop>")
    assert last.done and last.metrics == {"turns": 1.0, "tool_calls": 1.0, "tool_errors": 1.0}


@pytest.mark.parametrize(("max_turns", "max_tool_images"), [(3, 4), (4, 2), (1, 4)])
def test_max_added_images_is_the_most_crops_a_sample_gets(max_turns, max_tool_images):
    tools = ImageTools(max_turns=max_turns, max_tool_images=max_tool_images)
    episode, added, turn = start(tools), 0, None
    while turn is None or not turn.done:
        turn = episode.step("<crop>0, 0, 28, 28</crop>")  # a crop every turn
        added += len(turn.images)
    assert added == tools.max_added_images


def test_without_source_images_it_crops_what_the_policy_sees():
    seen = source_image().resize((56, 56))
    episode = ImageTools().start(RolloutPrompt(prompt="p", images=[seen], **BUDGET))
    crop = episode.step("<crop>0, 0, 56, 56</crop>").images[0]
    assert crop.size == (56, 56) and crop.tobytes() == seen.tobytes()


def test_a_prompt_without_images_has_nothing_to_crop():
    turn = ImageTools().start(RolloutPrompt(prompt="p", **BUDGET)).step("<crop>0, 0, 1, 1</crop>")
    assert turn.content == [{"type": "text", "text": "Crop failed: there is no image to crop."}]


def test_its_parameters_are_checked_and_its_instructions_name_the_coordinates():
    with pytest.raises(ValueError, match="coordinates must be one of pixels, normalized"):
        ImageTools(coordinates="percent")
    with pytest.raises(ValueError, match="max_turns must be at least 1"):
        ImageTools(max_turns=0)
    with pytest.raises(ValueError, match="max_tool_errors must be at least 0"):
        ImageTools(max_tool_errors=-1)
    assert "<crop image=N>x1, y1, x2, y2</crop>" in ImageTools().system_prompt
    assert "from 0 to 1" in instructions("normalized") and "from 0 to 1" not in instructions("pixels")
    assert ImageTools(instructions=False).system_prompt is None
    assert contract_problem("rollout_executor", ImageTools()) is None
