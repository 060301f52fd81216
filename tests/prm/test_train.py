"""`mm-eureka prm train` on CPU: a tiny PRM learns a separable toy set through OpenRLHF's DeepSpeed
strategy, and the scorer loads the result."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from mm_eureka_plugin.prm.scorer import PRMInput, PRMScorer, make_prm_checkpoint, prm_text, prm_token_ids, tag_logits
from mm_eureka_plugin.prm.train import PRMTrainError, load_config, read_rows, soft_label_loss

MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is this step right?"}]}]


def step(good: bool) -> str:
    return " ".join(["correct" if good else "wrong"] * 8)


@pytest.fixture
def toy(tmp_path):
    """32 rows whose one step says whether it is right: label 1 or 0."""
    Image.new("RGB", (56, 56), (200, 30, 30)).save(tmp_path / "red.png")
    rng = random.Random(0)
    rows = []
    for i in range(32):
        good = rng.random() < 0.5
        rows.append(
            {
                "id": str(i),
                "prompt": MESSAGES,
                "images": [str(tmp_path / "red.png")],
                "steps": [step(good)],
                "labels": [float(good)],
            }
        )
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return tmp_path


def test_a_tiny_prm_learns_the_toy_set_and_the_scorer_loads_it(toy, tiny_vlm_dir):
    recipe = toy / "recipe.yaml"
    recipe.write_text(
        f"model: {tiny_vlm_dir}\ndata: rows.jsonl\noutput_dir: out\nlr: 3.0e-3\nbatch_size: 8\n"
        "micro_batch_size: 4\nepochs: 2\nlr_scheduler: constant_with_warmup\nwarmup_ratio: 0.0\ndevice: cpu\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "mm_eureka_plugin.cli", "prm", "train", str(recipe), "--set", "seed=1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    record = json.loads((toy / "out" / "prm_train.json").read_text())
    losses = record["losses"]
    assert len(losses) == 8  # 32 rows / 8 per step, 2 epochs; 2 micro-batches per step
    assert record["config"]["seed"] == 1 and record["config"]["data"] == str(toy / "rows.jsonl")
    assert sum(losses[-2:]) / 2 < 0.5 * losses[0]
    assert (toy / "out" / "init").is_dir()  # the base had no <prm> token: a PRM checkpoint was made first
    scorer = PRMScorer(toy / "out")
    image = Image.open(toy / "red.png")
    (right, wrong) = scorer.score(
        [PRMInput(MESSAGES, [step(True)], [image]), PRMInput(MESSAGES, [step(False)], [image])]
    )
    assert right[0] > wrong[0] + 0.5


def test_the_loss_reads_only_the_tags_and_equals_the_full_logits_one(tiny_vlm_dir, tmp_path):
    from mm_eureka_plugin.checkpoints import load_model, load_processor, model_inputs

    path = make_prm_checkpoint(tiny_vlm_dir, tmp_path / "prm")
    processor, model = load_processor(path)[0], load_model(str(path), torch.float32)
    tag, yes, no = prm_token_ids(processor.tokenizer, path)
    image = Image.new("RGB", (56, 56), (0, 90, 200))
    items = [PRMInput(MESSAGES, ["a", "b b", "c"], [image]), PRMInput(MESSAGES, ["dd"], [image])]
    inputs = model_inputs(processor, model, [prm_text(processor, i) for i in items], [image, image], "cpu")
    pair = tag_logits(model, inputs, tag, [yes, no])
    full = model(**inputs).logits[inputs["input_ids"] == tag][:, [yes, no]]
    assert pair.shape == (4, 2) and torch.allclose(pair, full, atol=1e-5)
    targets = torch.tensor([1.0, 0.25, 0.0, 0.5])
    p_yes = pair.softmax(-1)[:, 0]
    expected = -(targets * p_yes.log() + (1 - targets) * (1 - p_yes).log()).mean()
    assert soft_label_loss(pair, targets).item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_bad_recipe_or_row_names_the_key_or_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\ndata: rows.jsonl\noutput_dir: out\nepoch: 3\n")
    with pytest.raises(PRMTrainError, match="unknown key 'epoch'"):
        load_config(recipe)
    recipe.write_text("model: m\ndata: rows.jsonl\n")
    with pytest.raises(PRMTrainError, match="key 'output_dir' is required"):
        load_config(recipe)
    recipe.write_text("model: m\ndata: rows.jsonl\noutput_dir: out\n")
    assert load_config(recipe, ["lr=1e-3", "epochs=2"]).lr == 1e-3  # YAML 1.2 floats, as in recipes
    with pytest.raises(PRMTrainError, match=r"--set 'lr': expected KEY=VALUE"):
        load_config(recipe, ["lr"])
    recipe.write_text("model: m\ndata: rows.jsonl\noutput_dir: out\nbatch_size: 10\nmicro_batch_size: 4\n")
    with pytest.raises(PRMTrainError, match="not a multiple of micro_batch_size"):
        load_config(recipe)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps({"prompt": MESSAGES, "steps": ["a"], "labels": [0.5]})
        + "\n"
        + json.dumps({"prompt": MESSAGES, "steps": ["a", "b"], "labels": [1.5, 0]})
        + "\n"
    )
    with pytest.raises(PRMTrainError, match=r"rows.jsonl, line 2: every label must be a number in \[0, 1\]"):
        read_rows(rows)
    rows.write_text("[1, 2]\n")
    with pytest.raises(PRMTrainError, match="rows.jsonl, line 1: a row needs 'prompt'"):
        read_rows(rows)


def test_the_paper_recipe_loads_with_its_settings():
    from pathlib import Path

    config = load_config(Path(__file__).resolve().parents[2] / "recipes" / "mm-prm-qwen2.5vl-7b.yaml")
    assert (config.lr, config.batch_size, config.epochs) == (2e-6, 512, 3)
    assert (config.lr_scheduler, config.warmup_ratio, config.weight_decay, config.zero_stage) == (
        "cosine",
        0.03,
        0.05,
        1,
    )


def test_too_few_rows_for_one_optimizer_step_is_refused_before_training(toy, tiny_vlm_dir):
    from mm_eureka_plugin.prm.train import train

    recipe = toy / "recipe.yaml"
    recipe.write_text(f"model: {tiny_vlm_dir}\ndata: rows.jsonl\noutput_dir: out\nbatch_size: 64\ndevice: cpu\n")
    with pytest.raises(PRMTrainError, match="32 rows make no full optimizer step of batch_size 64; lower batch_size"):
        train(load_config(recipe))
    assert not (toy / "out").exists()


def test_a_model_whose_label_word_is_not_one_token_is_a_one_line_error(toy, tiny_vlm_dir):
    base = toy / "base"
    shutil.copytree(tiny_vlm_dir, base)
    tokenizer = json.loads((base / "tokenizer.json").read_text())
    del tokenizer["model"]["vocab"]["Yes"]  # and every merge with it: "Yes" becomes "Y", "es"
    tokenizer["model"]["merges"] = [m for m in tokenizer["model"]["merges"] if "Yes" not in (*m, "".join(m))]
    (base / "tokenizer.json").write_text(json.dumps(tokenizer))
    recipe = toy / "recipe.yaml"
    recipe.write_text(
        f"model: {base}\ndata: rows.jsonl\noutput_dir: out\nbatch_size: 8\nmicro_batch_size: 4\ndevice: cpu\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "mm_eureka_plugin.cli", "prm", "train", str(recipe)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 2, run.stderr[-4000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("mm-eureka: error: ")]
    assert errors == [f"mm-eureka: error: {toy / 'out' / 'init'}: 'Yes' is 2 tokens, not one."], run.stderr[-4000:]
    assert "Traceback" not in run.stderr
