"""What an evaluation reads: a data file's problems by id, and pre-generated candidates.

A problem's id is its ``metadata["id"]`` (as text) when present, else its 1-based row number as
text; ``mm-eureka prm annotate`` and ``prm build-data`` identify problems the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mm_eureka_plugin.contracts import DataFormat
from mm_eureka_plugin.data.records import BadRow, PromptRecord
from mm_eureka_plugin.errors import UserError

MAX_LISTED = 10
"""Ids or rows listed in an error message before "and K more"."""


class EvalError(UserError):
    """An evaluation cannot run as asked; the message names the file, line or row, and what to do."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def problem_id(record: PromptRecord) -> str:
    """A problem's id: its ``metadata["id"]`` as text, else its row number as text."""
    value = record.metadata.get("id")
    return str(record.row) if value is None else _text(value)


def problem_category(record: PromptRecord, key: str) -> str | None:
    """A problem's category: ``metadata[key]`` as text, or None when missing."""
    value = record.metadata.get(key)
    return None if value is None else _text(value)


def listed(items: list[str], sep: str = ", ") -> str:
    """The first :data:`MAX_LISTED` items joined by ``sep``, then "and K more" for the rest."""
    shown = sep.join(items[:MAX_LISTED])
    return shown + (f"{sep}and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def read_problems(path: Path, data_format: DataFormat) -> dict[str, PromptRecord]:
    """The records of the data source ``path`` (read by the ``data_format`` component) by problem id,
    in file order; :class:`EvalError` listing the bad rows (a row the format rejects) and repeated
    ids, or for a file with no row."""
    records: dict[str, PromptRecord] = {}
    problems: list[str] = []
    for item in data_format.read(path):
        if isinstance(item, BadRow):
            problems.append(str(item))
            continue
        pid = problem_id(item)
        if pid in records:
            problems.append(f"row {item.row}: id {pid} again (first on row {records[pid].row}); ids must be unique")
            continue
        records[pid] = item
    if problems:
        raise EvalError(
            f"{path}: {len(problems)} bad row(s); an evaluation needs every problem:\n"
            + listed(problems, sep="\n")
            + "\nFix the rows (`mm-eureka data check` lists them all) or remove them from the benchmark."
        )
    if not records:
        raise EvalError(f"{path}: no problems in the benchmark.")
    return records


def read_candidates(path: Path, ids: list[str], benchmark: Path) -> dict[str, list[str]]:
    """The responses of the candidates file ``path`` by problem id: one line per problem of
    ``benchmark`` (whose ids are ``ids``), ``{"id": str | int, "responses": [str, ...]}``.

    Raises :class:`EvalError` naming the file and line for invalid JSON, a missing key, an id
    that is not a string or integer, responses that are not a non-empty list of strings, and a
    repeated id; naming the ids for ids not in the benchmark and benchmark problems with no line.
    """
    if not path.is_file():
        raise EvalError(f"{path}: no such candidates file.")
    known = set(ids)
    responses: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    unknown: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            pid, row_responses = _candidates_row(line, where)
            if pid in first_line:
                raise EvalError(f"{where}: id {pid} again (first on line {first_line[pid]}); one line per problem.")
            first_line[pid] = number
            if pid not in known:
                unknown.append(f"{pid} (line {number})")
                continue
            responses[pid] = row_responses
    if unknown:
        raise EvalError(
            f"{path}: {len(unknown)} id(s) not in the benchmark {benchmark}: {listed(unknown)}. "
            "Check that the candidates were generated for this benchmark (ids are metadata['id'], else row numbers)."
        )
    missing = [pid for pid in ids if pid not in responses]
    if missing:
        raise EvalError(
            f"{path}: no candidates for {len(missing)} benchmark problem(s): {listed(missing)}. "
            "Every problem of the benchmark needs one line with its responses."
        )
    return responses


def _candidates_row(line: str, where: str) -> tuple[str, list[str]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
    return check_candidates_row(row, where)


def check_candidates_row(row: Any, where: str) -> tuple[str, list[str]]:
    """(id as text, responses) of one parsed candidates row; :class:`EvalError` at ``where`` if malformed."""
    layout = 'Each line is {"id": ..., "responses": [str, ...]}.'
    if not isinstance(row, dict):
        raise EvalError(f"{where}: expected a JSON object, got {type(row).__name__}. {layout}")
    for key in ("id", "responses"):
        if key not in row:
            raise EvalError(f"{where}: missing '{key}'. {layout}")
    pid = row["id"]
    if isinstance(pid, bool) or not isinstance(pid, (str, int)):
        raise EvalError(f"{where}: 'id' must be a string or an integer, got {type(pid).__name__}.")
    responses = row["responses"]
    if not isinstance(responses, list) or not responses:
        got = "an empty list" if isinstance(responses, list) else f"a {type(responses).__name__}"
        raise EvalError(f"{where}: 'responses' must be a non-empty list of strings, got {got}.")
    for index, response in enumerate(responses):
        if not isinstance(response, str):
            raise EvalError(f"{where}: response {index} is a {type(response).__name__}, not a string.")
    return _text(pid), responses
