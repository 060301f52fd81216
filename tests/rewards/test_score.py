"""Scoring a JSON-lines file of responses (``mm-eureka reward score``)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mm_eureka_plugin.rewards import ScoreFileError, score_file

ACCURACY = "mm_eureka_plugin.rewards.accuracy:AccuracyReward"
FORMAT = "mm_eureka_plugin.rewards.format:FormatReward"

IMAGE_REWARD = '''
from mm_eureka_plugin.rewards import RewardResult


def image_pixels():
    """Reward = pixels of the sample's images; also echoes its id."""
    return lambda samples: [
        RewardResult(float(sum(i.width * i.height for i in s.images)), {"id_seen": float(s.metadata.get("id", -1))})
        for s in samples
    ]
'''


def write_rows(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_rows_get_the_summed_reward_and_each_component(tmp_path):
    path = write_rows(
        tmp_path / "responses.jsonl",
        [
            {"id": "a", "response": "<think>t</think><answer>$\\boxed{5}$</answer>", "answer": "5"},
            "",
            {"response": "<think>t</think><answer>6</answer>", "answer": "5", "prompt": "2+3?"},
            {"response": "5", "answer": "5", "metadata": {"id": 7}},
        ],
    )
    rows = list(score_file(path, [ACCURACY, FORMAT]))
    assert rows == [
        {"id": "a", "reward": 2.0, "accuracy": 1.0, "format": 1.0},
        {"reward": 1.0, "accuracy": 0.0, "format": 1.0},
        {"id": 7, "reward": 1.0, "accuracy": 1.0, "format": 0.0},
    ]


def test_images_are_loaded_relative_to_the_file(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (4, 3), "red").save(tmp_path / "imgs" / "a.png")
    (tmp_path / "image_reward.py").write_text(IMAGE_REWARD)
    path = write_rows(tmp_path / "rows.jsonl", [{"response": "r", "answer": "a", "images": ["imgs/a.png"], "id": 3}])
    assert list(score_file(path, [f"{tmp_path / 'image_reward.py'}:image_pixels"])) == [
        {"id": 3, "reward": 12.0, "id_seen": 3.0}
    ]


def test_a_failing_reward_is_reported_per_row(tmp_path):
    (tmp_path / "bad.py").write_text("def make():\n    return lambda samples: 1 / 0\n")
    path = write_rows(tmp_path / "rows.jsonl", [{"response": "r", "answer": "a"}])
    [row] = score_file(path, [FORMAT, f"{tmp_path / 'bad.py'}:make"])
    assert row["reward"] == 0.0 and "ZeroDivisionError" in row["error"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "row 2: not valid JSON"),
        ("[1, 2]", "row 2: expected a JSON object"),
        ('{"response": "r"}', "row 2: missing 'answer'"),
        ('{"answer": "a"}', "row 2: missing 'response'"),
        ('{"response": 5, "answer": "a"}', "row 2: 'response' must be a string"),
        ('{"response": "r", "answer": "a", "metadata": [1]}', "row 2: 'metadata' must be an object"),
        ('{"response": "r", "answer": "a", "images": "x.png"}', "row 2: 'images' must be a list"),
        (
            '{"response": "r", "answer": "a", "images": ["missing.png"]}',
            "row 2: image 'missing.png': image file not found",
        ),
    ],
)
def test_bad_rows_name_the_file_and_row_and_the_others_are_scored(tmp_path, line, message):
    good = '{"response": "<think>t</think><answer>a</answer>", "answer": "a"}'
    path = write_rows(tmp_path / "rows.jsonl", ['{"response": "r", "answer": "a"}', line, good])
    first, bad, last = score_file(path, [FORMAT])
    assert bad["row"] == 2 and bad["error"].startswith(f"{path}, row 2") and message in bad["error"]
    assert first["reward"] == 0.0 and last["reward"] == 1.0


def test_a_line_that_is_not_utf8_is_named_and_a_bom_is_read(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"response": "r", "answer": "a"}\n{"response": "caf\xe9", "answer": "a"}\n'
        b'{"response": "<think>t</think><answer>a</answer>", "answer": "a"}\n'
    )
    first, bad, last = score_file(path, [FORMAT])
    assert bad == {"row": 2, "error": f"{path}, row 2: not UTF-8 text (byte 18 of the line)."}
    assert first["reward"] == 0.0 and last["reward"] == 1.0


def test_too_many_images_are_refused(tmp_path):
    path = write_rows(tmp_path / "rows.jsonl", [{"response": "r", "answer": "a", "images": ["x.png"] * 3}])
    [row] = score_file(path, [FORMAT], max_images=2)
    assert "3 images, more than max_images=2" in row["error"]


def test_a_missing_file_or_no_reward_is_an_error(tmp_path):
    with pytest.raises(ScoreFileError, match="no such file"):
        list(score_file(tmp_path / "none.jsonl", [FORMAT]))
    with pytest.raises(ScoreFileError, match="at least one reward"):
        list(score_file(write_rows(tmp_path / "rows.jsonl", []), []))
