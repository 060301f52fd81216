"""An evaluation's inputs: problem ids, every bad row listed, candidates rows checked."""

from __future__ import annotations

import json

import pytest

from mm_eureka_plugin.eval.inputs import EvalError, check_candidates_row, read_problems
from mm_eureka_plugin.registry import resolve


def read(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return read_problems(path, resolve("data_format", "openrlhf"))


def test_a_problem_id_is_its_metadata_id_as_text_else_its_row_number(tmp_path):
    rows = [
        {"prompt": "1 + 1?", "label": "2", "metadata": {"id": 7}},
        {"prompt": "2 + 2?", "label": "4"},
        {"prompt": "3 + 3?", "label": "6", "metadata": {"id": "q3"}},
    ]
    assert list(read(tmp_path / "p.jsonl", rows)) == ["7", "2", "q3"]


def test_every_bad_row_and_repeated_id_is_listed_up_to_ten(tmp_path):
    rows = [{"prompt": "1 + 1?", "label": "2", "metadata": {"id": "same"}} for _ in range(12)]
    rows.append({"prompt": "no label"})
    with pytest.raises(EvalError) as exc:
        read(tmp_path / "p.jsonl", rows)
    message = str(exc.value)
    assert message.startswith(f"{tmp_path / 'p.jsonl'}: 12 bad row(s); an evaluation needs every problem:\n")
    assert "row 2: id same again (first on row 1); ids must be unique\n" in message
    assert "row 11: id same again" in message and "row 12:" not in message
    assert "\nand 2 more\nFix the rows (`mm-eureka data check` lists them all)" in message


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([1], "expected a JSON object, got list."),
        ({"responses": ["a"]}, "missing 'id'."),
        ({"id": True, "responses": ["a"]}, "'id' must be a string or an integer, got bool."),
        ({"id": 1, "responses": "a"}, "'responses' must be a non-empty list of strings, got a str."),
    ],
)
def test_a_malformed_candidates_row_names_where_and_what(row, message):
    with pytest.raises(EvalError) as exc:
        check_candidates_row(row, "c.jsonl, line 4")
    assert str(exc.value).startswith(f"c.jsonl, line 4: {message}")


def test_a_candidates_row_gives_the_id_as_text():
    assert check_candidates_row({"id": 12, "responses": ["a", "b"]}, "here") == ("12", ["a", "b"])
