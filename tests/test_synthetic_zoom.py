"""The zoom variant of the synthetic task: the colour shows only through a crop; the cold start
teaches the call format, not the answer."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from mm_eureka_plugin.config import RecipeError, parse_recipe
from mm_eureka_plugin.data import LABEL_COLUMN, decode_label
from mm_eureka_plugin.data.images import apply_pixel_budget
from mm_eureka_plugin.rollouts import ImageTools, RolloutPrompt
from mm_eureka_plugin.synthetic import QUESTION, build_colour_task
from mm_eureka_plugin.synthetic_zoom import BOX, COLOURS, DESIGN, GREY, PIXELS, zoom_image


def seen_and_crop(colour, box):
    source = zoom_image(colour, np.random.default_rng(0))
    seen = apply_pixel_budget(source, PIXELS, PIXELS)
    episode = ImageTools(max_turns=2).start(RolloutPrompt("p", [seen], [source], min_pixels=PIXELS, max_pixels=PIXELS))
    turn = episode.step("<crop>{}, {}, {}, {}</crop>".format(*box))
    return np.asarray(seen, dtype=np.int64), np.asarray(turn.images[0], dtype=np.int64)


def test_the_budget_hides_the_colour_and_a_crop_of_the_square_fills_each_vision_patch_with_it():
    seens, crops = {}, {}
    for colour in COLOURS:
        seens[colour], crops[colour] = seen_and_crop(colour, BOX)
    for colour in COLOURS:  # grey, whatever the colour (the same noise: the same rng seed)
        assert np.abs(seens[colour][26:30, 26:30] - 128).max() <= 3
        assert np.abs(seens[colour] - seens["red"]).max() <= 5
    for colour, crop in crops.items():
        assert crop.shape == (56, 56, 3)
        for row in range(4):  # each 14x14 patch's core is C or its mirror 2G - C, alternating
            for col in range(4):
                core = crop[row * 14 + 3 : row * 14 + 11, col * 14 + 3 : col * 14 + 11].reshape(-1, 3).mean(0)
                rgb = np.array(COLOURS[colour]) if (row + col) % 2 else 2 * np.array(GREY) - COLOURS[colour]
                assert np.abs(core - rgb).max() <= 12, (colour, row, col, core)
    _, elsewhere = seen_and_crop("red", (0, 0, 2, 2))  # any other spot shows grey
    assert np.abs(elsewhere - 128).max() <= 10


@pytest.fixture(scope="module")
def zoom_task(tmp_path_factory):
    return build_colour_task(tmp_path_factory.mktemp("zoom") / "task", seed=3, train_size=16, eval_size=8, kind="zoom")


def test_the_task_keeps_source_images_for_eval_and_balances_colours(zoom_task):
    train = [json.loads(line) for line in zoom_task.train.read_text().splitlines()]
    assert Counter(row["label"] for row in train) == dict.fromkeys(COLOURS, 4)
    assert Image.open(zoom_task.train.parent / train[0]["images"][0]).size == (448, 448)
    for row in (json.loads(line) for line in zoom_task.eval.read_text().splitlines()):
        _, metadata = decode_label(row[LABEL_COLUMN])
        [source], [seen] = metadata["source_images"], row["images"]
        assert Image.open(source).size == (448, 448) and Image.open(seen).size == (56, 56)
        assert json.loads(row["metadata"])["source_images"] == [source]
    marker = json.loads((zoom_task.model.parent / "task.json").read_text())
    assert (marker["kind"], marker["design"]) == ("zoom", DESIGN)


def test_a_task_directory_of_an_earlier_design_is_refused(tmp_path):
    marker = {
        "seed": 0,
        "train_size": 4,
        "eval_size": 4,
        "blank": False,
        "kind": "zoom",
    }  # before designs were recorded
    (tmp_path / "task.json").write_text(json.dumps(marker))
    with pytest.raises(ValueError, match="Delete it or pick another directory"):
        build_colour_task(tmp_path, train_size=4, eval_size=4, kind="zoom")
    assert [path.name for path in tmp_path.iterdir()] == ["task.json"]


def test_the_cold_start_teaches_the_call_format_not_the_answer(zoom_task):
    import torch

    from mm_eureka_plugin.checkpoints import load_model, load_processor, model_inputs, stop_token_ids

    processor, tokenizer = load_processor(zoom_task.model)
    assert tokenizer.tokenize("<crop>27, 27, 29, 29</crop>") == [
        "<crop>",
        "27",
        ",",
        "27",
        ",",
        "29",
        ",",
        "29",
        "</crop>",
    ]
    model = load_model(str(zoom_task.model), torch.float32).eval()
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    image = apply_pixel_budget(zoom_image("blue", np.random.default_rng(1)), PIXELS, PIXELS)
    inputs = model_inputs(processor, model, [prompt] * 96, [image] * 96, "cpu")
    stops = stop_token_ids(model.generation_config, tokenizer)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=True, max_new_tokens=12, eos_token_id=stops, pad_token_id=stops[0])
    texts = [
        t.strip() for t in tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    ]
    call = "<crop> 27 , 27 , 29 , 29 </crop>"
    answers = Counter(t for t in texts if t in COLOURS)
    assert texts.count(call) >= 0.6 * len(texts) and sum(answers.values()) >= 5  # mostly crops, some answers
    assert len(answers) >= 3  # several colours: which one is not learned


def test_a_zoom_recipe_takes_the_tasks_pixel_budget(tmp_path):
    recipe = parse_recipe({"plugin": {"synthetic_task": {"kind": "zoom"}}}, path=tmp_path / "r.yaml")
    assert (recipe.plugin.data.min_pixels, recipe.plugin.data.max_pixels) == (PIXELS, PIXELS)
    with pytest.raises(RecipeError, match="the zoom task shows images on its own pixel budget"):
        parse_recipe(
            {"plugin": {"synthetic_task": {"kind": "zoom"}, "data": {"format": "openrlhf", "max_pixels": 9999}}},
            path=tmp_path / "r.yaml",
        )
