"""``mm-eureka eval``: Best-of-N evaluation of pre-generated candidates on a benchmark, resumable.

Inputs:

- ``BENCHMARK``: a data file of any ``data_format`` (each row a problem: chat messages, images,
  gold answer, metadata). A bad row is an error: an evaluation never skips a problem silently.
  A problem's id is its ``metadata["id"]`` (as text) when present, else its 1-based row number
  as text; its category is ``metadata[category_key]`` (as text), or none when the key is missing.
- ``CANDIDATES.jsonl``: one line per benchmark problem, ``{"id": str | int, "responses": [str, ...]}``
  with at least one response; every problem needs exactly one line. Or, with ``policy``, a policy
  checkpoint and sampling settings: :func:`~mm_eureka_plugin.prm.generate.generate_candidates`
  writes ``OUT_DIR/candidates.jsonl`` first (resumable too), and the evaluation reads it.

Per problem (:func:`judge_problem`): the reward judges every response (a candidate is correct
when the result's ``score``, else its ``reward``, is >= 1); :func:`~mm_eureka_plugin.rewards.accuracy.answer_text`
extracts the answer majority voting compares; with a PRM, each response is split into steps and
all the problem's candidates are scored in one :meth:`PRMScorer.score` call (the prompt is the
benchmark's chat messages, with its images; a response without steps gets no step scores).

``OUT_DIR`` holds:

- ``eval.json``: the settings of the run (benchmark, format, candidates, reward, PRM, splitter,
  category key, and the policy with its sampling settings). A later run with other settings is
  refused: results of two settings never mix.
- ``results.jsonl``: one line per finished problem, appended and flushed as it finishes,
  ``{"id", "category", "candidates": [{"answer", "correct", "step_scores"[, "reward_error"]}]}``.
  A rerun skips the problems already there, so a killed run resumes where it stopped (a
  truncated last line is dropped with a warning, and its problem judged again).
- ``report.md``, ``report.json``, ``report.png``: :func:`~mm_eureka_plugin.prm.best_of_n.evaluate`'s
  report over every problem (pass@1, maj@N, pass@N, and ``bon/<aggregator>`` with a PRM).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mm_eureka_plugin.data.records import BadRow, PromptRecord
from mm_eureka_plugin.prm.best_of_n import Candidate, Problem, Report, evaluate
from mm_eureka_plugin.registry import names, resolve
from mm_eureka_plugin.rewards.accuracy import answer_text
from mm_eureka_plugin.rewards.types import RewardFn, RewardSample, score_samples

logger = logging.getLogger(__name__)

SETTINGS_FILE = "eval.json"
RESULTS_FILE = "results.jsonl"
CANDIDATES_FILE = "candidates.jsonl"
"""The candidates ``policy`` generates, in ``OUT_DIR``."""
POLICY_KEYS = ("path", "n", "temperature", "top_p", "max_new_tokens", "seed", "backend")
ANSWER_CHARS = 1000
"""Characters of a response's answer text kept for voting (the accuracy reward reads as many)."""
MAX_LISTED = 10
"""Ids or rows listed in an error message before "and K more"."""


class EvalError(ValueError):
    """An evaluation cannot run as asked; the message names the file, line or row, and what to do."""


def run_evaluation(
    benchmark: str | Path,
    candidates: str | Path | None,
    out_dir: str | Path,
    *,
    data_format: str | None = None,
    format_params: dict[str, Any] | None = None,
    reward: str = "accuracy",
    prm: str | Path | None = None,
    splitter: str = "tags",
    aggregators: Sequence[str] | None = None,
    category_key: str = "subject",
    batch_size: int = 8,
    progress: bool = False,
    policy: dict[str, Any] | None = None,
) -> Report:
    """Judge (and with ``prm``, score) every problem's candidates not yet in ``out_dir``, then write
    and return the report over all problems (see the module docstring).

    ``data_format`` is a ``data_format`` name or reference built with ``format_params`` (default:
    detected from the columns). ``reward``, ``splitter`` and ``aggregators`` are component names
    or references; ``aggregators`` defaults to every registered ``prm_aggregator`` (sorted) and,
    like ``splitter`` and ``batch_size`` (solutions per PRM forward), is used only with ``prm``.
    Everything is checked before the first problem is judged. Raises :class:`EvalError` (and the
    registry's ``ComponentError``, the data's ``DataError``) with what to fix.

    Exactly one of ``candidates`` and ``policy`` is given. ``policy`` holds the keys of
    :data:`POLICY_KEYS` (``path``: the checkpoint; the rest as :func:`generate_candidates` takes
    them); its candidates are generated into ``out_dir/candidates.jsonl`` (``batch_size``
    sequences per ``generate`` call) after the settings are checked, so a rerun with other
    sampling settings is refused before anything is generated.
    """
    from mm_eureka_plugin.data.convert import detect_format

    if (candidates is None) == (policy is None):
        raise EvalError("give exactly one of candidates (a file) and policy (a checkpoint to generate them).")
    if policy is not None:
        if sorted(policy) != sorted(POLICY_KEYS):
            raise EvalError(f"policy needs exactly the keys {', '.join(POLICY_KEYS)}; got {', '.join(sorted(policy))}.")
        if not Path(policy["path"]).is_dir():
            raise EvalError(f"{policy['path']}: no such policy checkpoint directory.")
        from mm_eureka_plugin.prm.generate import check_sampling, choose_backend

        check_sampling(**{key: value for key, value in policy.items() if key not in ("path", "seed", "backend")})
        # The backend that will run is recorded: samples differ between backends.
        policy = {**policy, "path": str(Path(policy["path"]).resolve()), "backend": choose_backend(policy["backend"])}
        candidates = Path(out_dir) / CANDIDATES_FILE
    benchmark, candidates, out_dir = Path(benchmark), Path(candidates), Path(out_dir)
    if batch_size < 1:
        raise EvalError(f"batch size must be at least 1, got {batch_size}.")
    format_params = dict(format_params or {})
    format_name = data_format or detect_format(benchmark)
    records = read_benchmark(benchmark, resolve("data_format", format_name, **format_params))
    if policy is None:
        responses = read_candidates(candidates, list(records), benchmark)
    judge = resolve("reward", reward)
    step_splitter = resolve("step_splitter", splitter) if prm is not None else None
    aggregate = (
        {name: resolve("prm_aggregator", name) for name in _aggregator_names(aggregators)} if prm is not None else {}
    )
    if prm is not None and not Path(prm).is_dir():
        raise EvalError(f"{prm}: no such PRM checkpoint directory.")

    settings = {
        "benchmark": str(benchmark.resolve()),
        "format": format_name,
        "format_params": format_params,
        "category_key": category_key,
        "candidates": str(candidates.resolve()),
        "reward": reward,
        "prm": None if prm is None else str(Path(prm).resolve()),
        "splitter": splitter if prm is not None else None,
    }
    if policy is not None:  # recorded only with a policy: older eval.json files stay valid
        settings["policy"] = policy
    out_dir.mkdir(parents=True, exist_ok=True)
    check_settings(out_dir, settings)
    if policy is not None:
        from mm_eureka_plugin.prm.generate import generate_candidates

        sampling = {key: value for key, value in policy.items() if key != "path"}
        generate_candidates(records, policy["path"], candidates, batch_size=batch_size, progress=progress, **sampling)
        responses = read_candidates(candidates, list(records), benchmark)
    results_path = out_dir / RESULTS_FILE
    done = read_results(results_path, records, benchmark)
    todo = [pid for pid in records if pid not in done]
    if todo:
        scorer = None if prm is None else load_scorer(prm, batch_size)
        bar = tqdm(
            total=len(records),
            initial=len(records) - len(todo),
            desc=f"Evaluating {benchmark.name}",
            unit="problem",
            file=sys.stderr,
            disable=not progress,
        )
        with results_path.open("a", encoding="utf-8") as out, bar:
            for pid in todo:
                record = records[pid]
                judged = judge_problem(record, responses[pid], judge, scorer, step_splitter, benchmark)
                row = {"id": pid, "category": problem_category(record, category_key), "candidates": judged}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                done[pid] = row
                bar.update()
    errors = sum("reward_error" in c for row in done.values() for c in row["candidates"])
    if errors:
        logger.warning(
            "%d candidate(s) could not be judged (reward_error in %s); they count as wrong.", errors, results_path
        )
    try:
        report = evaluate([_problem(done[pid]) for pid in records], aggregate)
    except ValueError as exc:
        raise EvalError(f"{results_path}: {exc}") from exc
    write_report(out_dir, report)
    return report


def _aggregator_names(aggregators: Sequence[str] | None) -> list[str]:
    chosen = names("prm_aggregator") if aggregators is None else [name.strip() for name in aggregators]
    chosen = list(dict.fromkeys(name for name in chosen if name))
    if not chosen:
        raise EvalError("no aggregators given; name at least one prm_aggregator, or 'all'.")
    return chosen


# ---------------------------------------------------------------------------------------------
# Inputs


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def problem_id(record: PromptRecord) -> str:
    """A benchmark problem's id: its ``metadata["id"]`` as text, else its row number as text."""
    value = record.metadata.get("id")
    return str(record.row) if value is None else _text(value)


def problem_category(record: PromptRecord, key: str) -> str | None:
    """A benchmark problem's category: ``metadata[key]`` as text, or None when missing."""
    value = record.metadata.get(key)
    return None if value is None else _text(value)


def read_benchmark(path: Path, data_format: Any) -> dict[str, PromptRecord]:
    """The benchmark's records by problem id, in file order; :class:`EvalError` listing the bad rows
    (a row the format rejects) and repeated ids, or for a file with no row."""
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
            + _listed(problems, sep="\n")
            + "\nFix the rows (`mm-eureka data check` lists them all) or remove them from the benchmark."
        )
    if not records:
        raise EvalError(f"{path}: no problems in the benchmark.")
    return records


def read_candidates(path: Path, ids: list[str], benchmark: Path) -> dict[str, list[str]]:
    """The responses of ``path`` by problem id (see the module docstring for the layout).

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
            f"{path}: {len(unknown)} id(s) not in the benchmark {benchmark}: {_listed(unknown)}. "
            "Check that the candidates were generated for this benchmark (ids are metadata['id'], else row numbers)."
        )
    missing = [pid for pid in ids if pid not in responses]
    if missing:
        raise EvalError(
            f"{path}: no candidates for {len(missing)} benchmark problem(s): {_listed(missing)}. "
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


def _listed(items: list[str], sep: str = ", ") -> str:
    shown = sep.join(items[:MAX_LISTED])
    return shown + (f"{sep}and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


# ---------------------------------------------------------------------------------------------
# The output directory


def check_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    """Record ``settings`` in ``out_dir/eval.json`` on the first run; on a later run, raise
    :class:`EvalError` naming every setting that differs from the recorded ones."""
    path = out_dir / SETTINGS_FILE
    if not path.exists():
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvalError(f"{path}: cannot read the recorded settings ({exc}). Delete {out_dir} to start over.") from None
    if not isinstance(recorded, dict):
        recorded = {}
    changed = [
        f"{key}: {recorded.get(key)!r} then, {settings.get(key)!r} now"
        for key in sorted(set(recorded) | set(settings))
        if recorded.get(key) != settings.get(key)
    ]
    if changed:
        raise EvalError(
            f"{out_dir} holds an evaluation with other settings ({'; '.join(changed)}). "
            f"Use another --out, or delete {out_dir} to start over."
        )


def read_results(path: Path, records: dict[str, PromptRecord], benchmark: Path) -> dict[str, dict[str, Any]]:
    """The finished problems of ``results.jsonl`` by id (empty when there is no file yet).

    A last line that is not valid JSON (a run killed mid-write) is dropped from the file with a
    warning. Raises :class:`EvalError` naming the line for any other line that is not a result
    row, for a repeated id, and naming the ids for ids not in the benchmark.
    """
    done: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    for where, row in read_appended(path, "judged"):
        reason = _result_row_problem(row)
        if reason is not None:
            raise EvalError(f"{where}: {reason}; not a row `mm-eureka eval` writes. Delete the directory.")
        if row["id"] in done:
            raise EvalError(f"{where}: problem {row['id']} again; delete the line.")
        if row["id"] not in records:
            unknown.append(row["id"])
        done[row["id"]] = row
    return _checked_ids(done, unknown, path, benchmark)


def read_appended(path: Path, redone: str) -> list[tuple[str, Any]]:
    """The rows of a jsonl file this command appends to, as (``"<path>, line N"``, parsed row).

    A last line that is not valid JSON (a run killed mid-write) is cut from the file with a
    warning: its problem is ``redone`` again. An invalid line before the last raises
    :class:`EvalError`. A complete last row missing its newline gets one, so appends start a line.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows: list[tuple[str, Any]] = []
    offset = 0  # where the current line starts
    for number, raw in enumerate(lines, start=1):
        where = f"{path}, line {number}"
        if raw.strip():
            try:
                rows.append((where, json.loads(raw)))
            except ValueError:
                if any(rest.strip() for rest in lines[number:]):
                    raise EvalError(
                        f"{where}: not valid JSON. Delete the line (its problem is {redone} again) or the directory."
                    ) from None
                logger.warning(
                    "%s: dropping a truncated last line (an interrupted run); it is %s again.", where, redone
                )
                with path.open("r+b") as out:
                    out.truncate(offset)
                return rows
        offset += len(raw) + 1
    if data and not data.endswith(b"\n"):
        with path.open("ab") as out:
            out.write(b"\n")
    return rows


def _checked_ids(done: dict[str, dict[str, Any]], unknown: list[str], path: Path, benchmark: Path) -> dict:
    if unknown:
        raise EvalError(
            f"{path}: {len(unknown)} problem id(s) not in the benchmark {benchmark}: {_listed(unknown)}. "
            "Use another --out for this benchmark, or delete the directory."
        )
    return done


def _result_row_problem(row: Any) -> str | None:
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        return "no string 'id'"
    candidates = row.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return "no 'candidates' list"
    for c in candidates:
        if not (
            isinstance(c, dict)
            and isinstance(c.get("answer"), str)
            and isinstance(c.get("correct"), bool)
            and isinstance(c.get("step_scores"), list)
        ):
            return "a candidate without answer, correct and step_scores"
    return None


def _problem(row: dict[str, Any]) -> Problem:
    candidates = tuple(Candidate(c["answer"], c["correct"], tuple(c["step_scores"])) for c in row["candidates"])
    return Problem(row["id"], candidates, row.get("category"))


def write_report(out_dir: Path, report: Report) -> None:
    """Write ``report.md`` (the markdown table), ``report.json`` and ``report.png`` into ``out_dir``."""
    (out_dir / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    (out_dir / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    report.plot(out_dir / "report.png")


# ---------------------------------------------------------------------------------------------
# One problem


def user_text(messages: list[dict[str, Any]]) -> str:
    """The text items of the user messages, joined by newlines: the prompt a reward sees."""
    return "\n".join(
        item["text"] for m in messages if m["role"] == "user" for item in m["content"] if item["type"] == "text"
    )


def load_scorer(prm: str | Path, batch_size: int):
    """A :class:`~mm_eureka_plugin.prm.scorer.PRMScorer` on ``prm``; :class:`EvalError` if it is not a PRM."""
    from mm_eureka_plugin.prm.scorer import PRMCheckpointError, PRMScorer

    try:
        return PRMScorer(prm, batch_size=batch_size)
    except PRMCheckpointError as exc:
        raise EvalError(str(exc)) from None
    except OSError as exc:
        raise EvalError(f"{prm}: cannot load the PRM checkpoint: {exc}") from None


def judge_problem(
    record: PromptRecord,
    responses: list[str],
    reward: RewardFn,
    scorer: Any = None,
    splitter: Any = None,
    benchmark: str | Path = "benchmark",
) -> list[dict[str, Any]]:
    """One result per response: ``{"answer", "correct", "step_scores"}`` (and ``"reward_error"``
    when the reward failed on it, which counts as wrong).

    The images are loaded onto MM-Eureka's pixel budget, as training and rollout see them; an
    image that cannot be loaded raises :class:`EvalError` naming the benchmark row. With a
    ``scorer``, responses are split by ``splitter`` and those with steps are scored in one call.
    """
    from mm_eureka_plugin.data.convert import load_record_images
    from mm_eureka_plugin.data.images import ImageError
    from mm_eureka_plugin.prm.scorer import PRMInput

    try:
        images = load_record_images(record)
    except ImageError as exc:
        raise EvalError(f"{benchmark}: row {record.row}: {exc}") from None
    prompt = user_text(record.messages)
    metadata = {"id": problem_id(record), **record.metadata}
    samples = [RewardSample(r, record.answer, prompt, images, metadata) for r in responses]
    results = score_samples(reward, samples)
    step_scores: list[list[float]] = [[] for _ in responses]
    if scorer is not None:
        steps = [[step.text for step in splitter(response)] for response in responses]
        with_steps = [i for i, s in enumerate(steps) if s]
        scores = scorer.score([PRMInput(record.messages, steps[i], images) for i in with_steps])
        for i, values in zip(with_steps, scores):
            step_scores[i] = values
    out = []
    for response, result, values in zip(responses, results, step_scores):
        score = result.reward if result.score is None else result.score
        candidate = {"answer": answer_text(response, ANSWER_CHARS), "correct": score >= 1, "step_scores": values}
        if result.error is not None:
            candidate["reward_error"] = result.error
        out.append(candidate)
    return out
