"""Resumable run files: what is done survives a cut last line, appends are visible at once, a rerun resumes."""

from __future__ import annotations

import json
import logging

import pytest

from mm_eureka_plugin.errors import UserError
from mm_eureka_plugin.runfiles import RunFileError, appending, read_done

ROWS = [{"id": "a", "value": 1}, {"id": "b", "value": "ü"}, {"id": "c", "value": [3]}]


def lines(rows):
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def test_no_file_is_nothing_done(tmp_path):
    assert read_done(tmp_path / "missing.jsonl", "judged") == []
    assert not (tmp_path / "missing.jsonl").exists()


def test_a_cut_last_line_is_reported_and_cut_from_the_file(tmp_path, caplog):
    path = tmp_path / "run.jsonl"
    path.write_text(lines(ROWS[:2]) + lines(ROWS[2:])[:9], encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        done = read_done(path, "judged")
    assert done == [(f"{path}, line 1", ROWS[0]), (f"{path}, line 2", ROWS[1])]
    assert f"{path}, line 3: dropping a truncated last line (an interrupted run); it is judged again." in caplog.text
    assert path.read_text(encoding="utf-8") == lines(ROWS[:2])


def test_a_broken_line_before_the_last_is_an_error_naming_it(tmp_path):
    path = tmp_path / "run.jsonl"
    text = lines(ROWS[:1]) + "{oops\n" + lines(ROWS[1:])
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RunFileError) as exc:
        read_done(path, "searched")
    assert str(exc.value) == (
        f"{path}, line 2: not valid JSON. Delete the line (its problem is searched again) or the directory."
    )
    assert isinstance(exc.value, UserError)
    assert path.read_text(encoding="utf-8") == text  # nothing cut


def test_blank_lines_are_skipped_and_a_missing_last_newline_is_added(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(lines(ROWS[:1]) + "\n" + json.dumps(ROWS[1]), encoding="utf-8")
    assert read_done(path, "generated") == [(f"{path}, line 1", ROWS[0]), (f"{path}, line 3", ROWS[1])]
    assert path.read_text(encoding="utf-8").endswith("\n")


def test_each_appended_row_is_on_disk_before_the_file_is_closed(tmp_path):
    path = tmp_path / "new" / "dir" / "run.jsonl"
    with appending(path) as append:
        append(ROWS[0])
        assert [row for _, row in read_done(path, "judged")] == ROWS[:1]
        append(ROWS[1])
        assert path.read_text(encoding="utf-8") == lines(ROWS[:2])  # one JSON line each, text as written


def test_a_rerun_after_a_partial_file_resumes_with_the_rest(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(lines(ROWS[:1]) + lines(ROWS[1:2])[:-5], encoding="utf-8")  # killed while writing b
    done = {row["id"] for _, row in read_done(path, "judged")}
    assert done == {"a"}
    with appending(path) as append:
        for row in ROWS:
            if row["id"] not in done:
                append(row)
    assert [row for _, row in read_done(path, "judged")] == ROWS
    assert path.read_text(encoding="utf-8") == lines(ROWS)
