"""The synthetic colour task: files, tokenizer, processor, model, images, idempotent builds."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from mm_eureka_plugin.checkpoints import load_processor
from mm_eureka_plugin.data import LABEL_COLUMN, decode_label
from mm_eureka_plugin.synthetic import COLOURS, QUESTION, build_colour_task
from mm_eureka_plugin.tiny_vlm import QWEN_SPECIAL_TOKENS


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def pixels(row: dict, base: Path) -> np.ndarray:
    return np.asarray(Image.open(base / row["images"][0]).convert("RGB"), dtype=np.int64)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return build_colour_task(tmp_path_factory.mktemp("colour") / "task", train_size=16, eval_size=8)


@pytest.fixture(scope="module")
def blank_task(tmp_path_factory):
    return build_colour_task(tmp_path_factory.mktemp("colour") / "blank", train_size=8, eval_size=4, blank=True)


def test_builds_balanced_train_and_eval_files(task):
    assert (task.model / "config.json").is_file() and (task.model / "tokenizer.json").is_file()
    train, evals = rows(task.train), rows(task.eval)
    assert Counter(r["label"] for r in train) == dict.fromkeys(COLOURS, 4)
    assert Counter(r["label"] for r in evals) == dict.fromkeys(COLOURS, 2)
    assert [r["label"] for r in train] != sorted(r["label"] for r in train)  # shuffled
    for i, row in enumerate(train):
        assert row["metadata"] == {"id": f"train-{i:05d}", "colour": row["label"]}
        assert (task.train.parent / row["images"][0]).is_file()
        assert row["prompt"][0]["content"] == [{"type": "image"}, {"type": "text", "text": QUESTION}]


def test_eval_rows_are_converted_with_the_label_column_and_the_colour_as_datasource(task):
    for i, row in enumerate(rows(task.eval)):
        assert Path(row["images"][0]).is_absolute() and Path(row["images"][0]).is_file()
        assert decode_label(row[LABEL_COLUMN]) == (row["label"], {"id": f"eval-{i:05d}", "colour": row["label"]})
        assert row["datasource"] == row["label"]


def test_tokenizer_round_trips_colour_words(task):
    tokenizer = load_processor(task.model)[1]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for colour in COLOURS:
        ids = tokenizer(colour, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] != tokenizer.unk_token_id
        assert tokenizer.decode([ids[0], end], skip_special_tokens=True) == colour
    assert tokenizer.eos_token_id == end
    for special in QWEN_SPECIAL_TOKENS:
        assert special in tokenizer.all_special_tokens
        assert tokenizer(f"a{special}b", add_special_tokens=False)["input_ids"][1] == tokenizer.convert_tokens_to_ids(
            special
        )
    assert tokenizer.pad_token == "<|endoftext|>"


def test_processor_and_model_run_on_a_prompt(task):
    processor = load_processor(task.model)[0]
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(task.model)
    row = rows(task.eval)[0]
    text = processor.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.open(row["images"][0])], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == 4
    assert processor.tokenizer.unk_token_id not in inputs["input_ids"][0].tolist()
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert model.config.text_config.vocab_size >= len(processor.tokenizer)
    assert model.generation_config.eos_token_id == processor.tokenizer.eos_token_id


def test_images_show_the_colour_unless_blank(task, blank_task):
    train = rows(task.train)
    means = {}
    for row in train:
        image = pixels(row, task.train.parent)
        assert image.shape == (56, 56, 3)
        assert np.abs(image.mean((0, 1)) - COLOURS[row["label"]]).max() < 30
        means.setdefault(row["label"], image.mean((0, 1)))
    assert len({tuple(mean.round()) for mean in means.values()}) == len(COLOURS)
    assert len({pixels(row, task.train.parent).tobytes() for row in train}) == len(train)
    blank = [pixels(row, blank_task.train.parent) for row in rows(blank_task.train)]
    assert all(np.array_equal(image, blank[0]) for image in blank)


def test_rebuild_is_a_no_op_with_same_parameters(task):
    out_dir = task.model.parent
    before = (out_dir / "task.json").stat().st_mtime_ns
    assert build_colour_task(out_dir, train_size=16, eval_size=8) == task
    assert (out_dir / "task.json").stat().st_mtime_ns == before


def test_rebuild_with_other_parameters_raises(task):
    with pytest.raises(ValueError, match="Delete it or pick another"):
        build_colour_task(task.model.parent, train_size=16, eval_size=8, seed=1)


def test_refuses_a_directory_holding_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="no complete colour task"):
        build_colour_task(tmp_path, train_size=4, eval_size=4)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
