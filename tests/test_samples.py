"""The samples log: bounded rows, reading a cut or partly written file, choosing and printing samples."""

import json
import logging

import pytest

from mm_eureka_plugin.cli import main
from mm_eureka_plugin.samples import (
    FIELDS,
    MAX_TEXT,
    SAMPLES_FILE,
    append_samples,
    cut,
    read_samples,
    sample_row,
    select,
    spread,
)


def row(step, reward, prompt_id="p", response="red", error=None):
    return sample_row(
        step=step,
        prompt_id=prompt_id,
        prompt="<|vision_start|><|image_pad|><|vision_end|>What colour is the image?",
        images=["/data/run/images/train-00001.png"],
        response=response,
        rewards={"accuracy": reward, "format": 0.0},
        reward=reward,
        advantage=reward - 0.5,
        reward_error=error,
    )


def test_a_row_has_every_field_images_by_file_name_and_long_texts_cut():
    long = "x" * 5000 + "<answer>7</answer>"
    built = row(3, 1.0, response=long, error="E" * 3000)
    assert list(built) == list(FIELDS)
    assert built["images"] == ["train-00001.png"]
    assert len(built["response"]) < MAX_TEXT + 60 and built["response"].endswith("<answer>7</answer>")
    assert "characters cut" in built["response"] and "characters cut" in built["reward_error"]
    assert cut("short") == "short"
    text = "".join(chr(ord("a") + i % 26) for i in range(3 * MAX_TEXT))
    kept = cut(text)
    head, _, tail = kept.partition(" [... ")
    assert text.startswith(head) and text.endswith(tail.partition("...] ")[2])
    assert f"{len(text) - MAX_TEXT} characters cut" in kept


def test_spread_picks_evenly_from_the_first():
    assert spread(4, 128) == [0, 32, 64, 96]
    assert spread(10, 3) == [0, 1, 2]
    assert spread(1, 5) == [0]


def test_a_cut_or_partly_written_file_is_read_with_warnings(tmp_path, caplog):
    append_samples(tmp_path, [row(1, 0.0), row(1, 1.0), row(2, 1.0, prompt_id="q")])
    path = tmp_path / SAMPLES_FILE
    with path.open("a") as out:
        out.write('{"step": 3, "not": "a sample"}\n')
        out.write(json.dumps(row(3, 0.5))[:40])  # killed mid-line
    with caplog.at_level(logging.WARNING):
        rows = read_samples(tmp_path)
    assert [r["step"] for r in rows] == [1, 1, 2]
    assert f"{path}:4: skipped line: not a sample" in caplog.text
    assert f"{path}:5: skipped line: not JSON" in caplog.text


def test_select_takes_the_last_step_or_ranks_by_reward():
    rows = [row(1, 0.0, "a"), row(1, 1.0, "b"), row(2, 0.5, "c"), row(2, 0.25, "d")]
    assert [r["prompt_id"] for r in select(rows)] == ["c", "d"]
    assert [r["prompt_id"] for r in select(rows, step=1)] == ["a", "b"]
    assert [r["prompt_id"] for r in select(rows, order="worst", limit=3)] == ["a", "d", "c"]
    assert [r["prompt_id"] for r in select(rows, step=2, order="best")] == ["c", "d"]


def test_samples_command_prints_rows_and_reports_missing_ones(tmp_path, capsys, caplog):
    append_samples(tmp_path, [row(1, 1.0, "a"), row(2, 0.0, "b", response="blue", error="ValueError: boom")])
    (tmp_path / SAMPLES_FILE).open("a").write("{truncated")
    assert main(["samples", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--- step 2 | prompt b | reward 0.000 (accuracy 0.00, format 0.00) | advantage -0.500")
    assert "response: blue" in out and "reward error: ValueError: boom" in out and "images:   train-00001.png" in out
    assert "skipped line: not JSON" in caplog.text
    assert main(["samples", str(tmp_path), "--best"]) == 0
    assert capsys.readouterr().out.startswith("--- step 1 | prompt a | reward 1.000")
    assert main(["samples", str(tmp_path), "--step", "7"]) == 1
    assert "no samples for step 7; logged steps: 1..2" in capsys.readouterr().err
    assert main(["samples", str(tmp_path / "nowhere")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_log_samples_must_be_a_count(tmp_path):
    from mm_eureka_plugin.config import RecipeError, parse_plugin_section

    assert parse_plugin_section({}).log_samples == 4
    assert parse_plugin_section({"log_samples": 0}).log_samples == 0
    for bad in (-1, 2.5, True, "all"):
        with pytest.raises(RecipeError, match="'plugin.log_samples' must be a whole number"):
            parse_plugin_section({"log_samples": bad})
