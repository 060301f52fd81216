"""``mm-eureka eval``: Best-of-N evaluation of a benchmark's candidates, resumable.

Inputs (:mod:`~mm_eureka_plugin.eval.inputs`):

- ``BENCHMARK``: a data source of any ``data_format`` (each row a problem: chat messages, images,
  gold answer, metadata): a data file, a hub-layout folder or a hub dataset name with an optional
  ``:split`` (e.g. ``FanqingM/MMK12:test``; :func:`~mm_eureka_plugin.data.formats.data_source`).
  A bad row is an error: an evaluation never skips a problem silently.
  A problem's id is its ``metadata["id"]`` (as text) when present, else its 1-based row number
  as text; its category is ``metadata[category_key]`` (as text), or none when the key is missing.
- ``CANDIDATES.jsonl``: one line per benchmark problem, ``{"id": str | int, "responses": [str, ...]}``
  with at least one response; every problem needs exactly one line. Or, with a
  :class:`~mm_eureka_plugin.eval.generate.Policy`,
  :func:`~mm_eureka_plugin.eval.generate.generate_candidates` writes ``OUT_DIR/candidates.jsonl``
  first (resumable too), and the evaluation reads it.

Per problem (:func:`judge_problem`), one of:

- a **reward** (default ``accuracy``) judges every response: a candidate is correct when the
  result's ``score``, else its ``reward``, is >= 1; :func:`~mm_eureka_plugin.rewards.answers.answer_text`
  extracts the answer majority voting compares.
- a **judge** (a ``judge`` component, e.g. ``openai_compatible`` for GPT-4o or ``math_verify``;
  :func:`judge_answers`) is asked about each response's answer as MM-Eureka's MMK12 evaluation
  extracts it (:func:`~mm_eureka_plugin.rewards.answers.mmk12_eval_answer`: the first answer span,
  else the last ``\\boxed{}``, else the whole response) against the gold answer; a candidate is
  correct when it says yes. Every gold is checked with the judge's ``check_gold`` before the first
  problem (one it cannot judge is an error, never a skipped problem). :data:`JUDGED_AT_ONCE`
  problems are judged at once, in threads. A judge that stays unavailable
  (:class:`~mm_eureka_plugin.prm.judges.JudgeUnavailable`) stops the run with an
  :class:`EvalError`; the problems judged before it are kept, and a rerun continues.

With a PRM, each response is also split into steps and all the problem's candidates are scored in
one :meth:`PRMScorer.score` call (the prompt is the benchmark's chat messages, with its images; a
response without steps gets no step scores).

``OUT_DIR`` holds:

- ``eval.json``: the settings of the run (benchmark, format, candidates, reward, PRM, splitter,
  category key, the policy with its sampling settings, and the judge with its parameters, secrets
  redacted: :func:`recorded_judge`). A later run with other settings is refused: results of two
  settings never mix.
- ``results.jsonl``: one line per finished problem, appended and flushed as it finishes (a
  :mod:`~mm_eureka_plugin.runfiles` run file),
  ``{"id", "category", "candidates": [{"answer", "correct", "step_scores"[, "reward_error"]}]}``.
  A rerun skips the problems already there, so a killed run resumes where it stopped (a
  truncated last line is dropped with a warning, and its problem judged again).
- ``report.md``, ``report.json``, ``report.png``: :func:`~mm_eureka_plugin.eval.best_of_n.evaluate`'s
  report over every problem (pass@1, maj@N, pass@N, and ``bon/<aggregator>`` with a PRM).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mm_eureka_plugin.contracts import Judge, Reward, StepSplitter
from mm_eureka_plugin.data.convert import detect_format, load_record_images
from mm_eureka_plugin.data.formats import absolute_source
from mm_eureka_plugin.data.images import ImageError
from mm_eureka_plugin.data.records import PromptRecord
from mm_eureka_plugin.eval.best_of_n import Candidate, Problem, Report, evaluate
from mm_eureka_plugin.eval.generate import Policy, generate_candidates
from mm_eureka_plugin.eval.inputs import (
    EvalError,
    listed,
    problem_category,
    problem_id,
    read_candidates,
    read_problems,
)
from mm_eureka_plugin.prm.judges import JudgeUnavailable, redact_url
from mm_eureka_plugin.prm.scorer import PRMCheckpointError, PRMInput, PRMScorer
from mm_eureka_plugin.registry import names, resolve
from mm_eureka_plugin.rewards.answers import answer_text, mmk12_eval_answer
from mm_eureka_plugin.rewards.types import RewardSample, score_samples
from mm_eureka_plugin.runfiles import appending, read_done

logger = logging.getLogger(__name__)

SETTINGS_FILE = "eval.json"
RESULTS_FILE = "results.jsonl"
CANDIDATES_FILE = "candidates.jsonl"
"""The candidates a :class:`~mm_eureka_plugin.eval.generate.Policy` generates, in ``OUT_DIR``."""
ANSWER_CHARS = 1000
"""Characters of a response's answer text kept for voting (the accuracy reward reads as many)."""
DEFAULT_REWARD = "accuracy"
"""The reward of ``--reward``'s default; the only one a judge may be given with."""
JUDGED_AT_ONCE = 8
"""Problems a judge is asked about at once, each in its own thread (the judge may also run a
problem's candidates concurrently, e.g. ``openai_compatible``'s ``concurrency``)."""
SECRET_PARAM = re.compile(r"key|token|secret|password|credential", re.IGNORECASE)
"""Judge parameters whose value :func:`recorded_judge` never writes (names ending ``_env``, which
name an environment variable, are kept)."""


@dataclass(frozen=True)
class PRMSettings:
    """The PRM of an evaluation: its checkpoint directory ``path``, the ``splitter`` (a
    ``step_splitter`` name or reference) of the candidates' steps, and the ``aggregators``
    (``prm_aggregator`` names or references) whose picks are reported; None: every registered one."""

    path: str | Path
    splitter: str = "tags"
    aggregators: Sequence[str] | None = None


def run_evaluation(
    benchmark: str | Path,
    out_dir: str | Path,
    *,
    candidates: str | Path | None = None,
    policy: Policy | None = None,
    data_format: str | None = None,
    format_params: dict[str, Any] | None = None,
    reward: str = DEFAULT_REWARD,
    judge: str | None = None,
    judge_params: dict[str, Any] | None = None,
    prm: PRMSettings | None = None,
    category_key: str = "subject",
    batch_size: int = 8,
    progress: bool = False,
) -> Report:
    """Judge (and with ``prm``, score) every problem's candidates not yet in ``out_dir``, then write
    and return the report over all problems (see the module docstring).

    Exactly one of ``candidates`` (a file) and ``policy`` is given; the policy's candidates are
    generated into ``out_dir/candidates.jsonl`` after the settings are checked, so a rerun with
    other sampling settings is refused before anything is generated. ``data_format`` is a
    ``data_format`` name or reference built with ``format_params`` (default: detected from the
    columns). ``reward`` is a ``reward`` name or reference; ``judge`` a ``judge`` name or reference
    built with ``judge_params``, which decides instead of the reward (so ``reward`` stays the
    default). ``batch_size`` is the number of solutions per PRM forward pass. Everything is checked
    before the first problem is judged. Raises :class:`EvalError` (and the registry's
    ``ComponentError``, the data's ``DataError``) with what to fix; also when the judge becomes
    unavailable, after the problems judged so far are written.
    """
    if (candidates is None) == (policy is None):
        raise EvalError("give exactly one of candidates (a file) and policy (a checkpoint to generate them).")
    if judge is not None and reward != DEFAULT_REWARD:
        raise EvalError(
            f"--judge {judge} and --reward {reward}: give one of them; with a judge, the judge decides "
            "which candidates are correct."
        )
    if judge is None and judge_params:
        raise EvalError("--judge-arg without --judge: name the judge the arguments are for.")
    if policy is not None:
        candidates = Path(out_dir) / CANDIDATES_FILE
    benchmark, candidates, out_dir = Path(benchmark), Path(candidates), Path(out_dir)
    if batch_size < 1:
        raise EvalError(f"--batch-size must be at least 1, got {batch_size}.")
    format_params = dict(format_params or {})
    format_name = data_format or detect_format(benchmark)
    records = read_problems(benchmark, resolve("data_format", format_name, **format_params))
    if policy is None:
        responses = read_candidates(candidates, list(records), benchmark)
    scoring = None if judge is not None else resolve("reward", reward)
    answer_judge = None if judge is None else resolve("judge", judge, **(judge_params or {}))
    if answer_judge is not None:
        check_golds(answer_judge, records, benchmark)
    step_splitter, aggregate = None, {}
    if prm is not None:
        step_splitter = resolve("step_splitter", prm.splitter)
        aggregate = {name: resolve("prm_aggregator", name) for name in _aggregator_names(prm.aggregators)}
        if not Path(prm.path).is_dir():
            raise EvalError(f"{prm.path}: no such PRM checkpoint directory.")

    settings = {
        "benchmark": absolute_source(benchmark),
        "format": format_name,
        "format_params": format_params,
        "category_key": category_key,
        "candidates": str(candidates.resolve()),
        "reward": None if judge is not None else reward,
        "prm": None if prm is None else str(Path(prm.path).resolve()),
        "splitter": None if prm is None else prm.splitter,
    }
    if policy is not None:  # recorded only with a policy: older eval.json files stay valid
        settings["policy"] = policy.to_json()
    if judge is not None:  # likewise
        settings["judge"] = recorded_judge(judge, judge_params or {})
    out_dir.mkdir(parents=True, exist_ok=True)
    check_settings(out_dir, settings)
    if policy is not None:
        generate_candidates(records, policy, candidates, progress=progress)
        responses = read_candidates(candidates, list(records), benchmark)
    results_path = out_dir / RESULTS_FILE
    done = read_results(results_path, records, benchmark)
    todo = [pid for pid in records if pid not in done]
    if todo:
        scorer = None if prm is None else load_scorer(prm.path, batch_size)
        bar = tqdm(
            total=len(records),
            initial=len(records) - len(todo),
            desc=f"Evaluating {benchmark.name}",
            unit="problem",
            file=sys.stderr,
            disable=not progress,
        )
        with appending(results_path) as append, bar:

            def finish(pid: str, judged: list[dict[str, Any]] | None = None) -> None:
                record = records[pid]
                candidates = judge_problem(
                    record, responses[pid], scoring, scorer, step_splitter, benchmark, judged=judged
                )
                row = {"id": pid, "category": problem_category(record, category_key), "candidates": candidates}
                append(row)
                done[pid] = row
                bar.update()

            if answer_judge is None:
                for pid in todo:
                    finish(pid)
            else:
                try:
                    _judge_all(todo, records, responses, answer_judge, finish)
                except JudgeUnavailable as exc:
                    raise EvalError(
                        f"the judge is unavailable ({exc}); stopped. {len(done)} of {len(records)} problems are "
                        f"judged and kept in {results_path}: rerun the same command to continue once it is back."
                    ) from exc
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


def _judge_all(todo, records, responses, answer_judge, finish) -> None:
    """Ask ``answer_judge`` about :data:`JUDGED_AT_ONCE` problems at a time and ``finish`` each
    judged one in order; after a window where the judge was unavailable for a problem, raise the
    first :class:`~mm_eureka_plugin.prm.judges.JudgeUnavailable` (the others are finished)."""
    with ThreadPoolExecutor(JUDGED_AT_ONCE) as pool:
        for start in range(0, len(todo), JUDGED_AT_ONCE):
            window = todo[start : start + JUDGED_AT_ONCE]
            futures = [pool.submit(judge_answers, answer_judge, responses[pid], records[pid]) for pid in window]
            failure = None
            for pid, future in zip(window, futures):
                try:
                    judged = future.result()
                except JudgeUnavailable as exc:
                    failure = failure or exc
                    continue
                finish(pid, judged)
            if failure is not None:
                raise failure


def _aggregator_names(aggregators: Sequence[str] | None) -> list[str]:
    chosen = names("prm_aggregator") if aggregators is None else [name.strip() for name in aggregators]
    chosen = list(dict.fromkeys(name for name in chosen if name))
    if not chosen:
        raise EvalError("no aggregators given; name at least one prm_aggregator, or 'all'.")
    return chosen


# ---------------------------------------------------------------------------------------------
# The judge


def recorded_judge(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The judge as ``eval.json`` records it: ``{"name", "params"}``, with the value of every
    parameter named like a secret (:data:`SECRET_PARAM`) replaced by ``"<redacted>"`` and URLs
    without credentials or query (:func:`~mm_eureka_plugin.prm.judges.redact_url`). An API key is
    never written; two runs differing only in a key or a URL's query count as the same judge."""
    shown: dict[str, Any] = {}
    for key, value in params.items():
        if SECRET_PARAM.search(key) and not key.endswith("_env"):
            shown[key] = "<redacted>"
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            shown[key] = redact_url(value)
        else:
            shown[key] = value
    return {"name": name, "params": shown}


def check_golds(answer_judge: Judge, records: dict[str, PromptRecord], benchmark: Path) -> None:
    """:class:`EvalError` listing the problems whose gold answer ``answer_judge`` cannot judge
    (its ``check_gold``); each distinct gold is checked once."""
    why: dict[str, str | None] = {}
    problems = []
    for pid, record in records.items():
        if record.answer not in why:
            why[record.answer] = answer_judge.check_gold(record.answer)
        if why[record.answer] is not None:
            problems.append(f"row {record.row} (id {pid}): {why[record.answer]}")
    if problems:
        raise EvalError(
            f"{benchmark}: the judge cannot judge {len(problems)} problem(s):\n"
            + listed(problems, sep="\n")
            + "\nFix their gold answers, remove them from the benchmark, or use another judge."
        )


def judge_answers(answer_judge: Judge, responses: list[str], record: PromptRecord) -> list[dict[str, Any]]:
    """``{"answer", "correct"}`` per response: its answer as MM-Eureka's MMK12 evaluation extracts it
    (:func:`~mm_eureka_plugin.rewards.answers.mmk12_eval_answer`, its last :data:`ANSWER_CHARS`
    characters kept), correct when ``answer_judge`` says so for that answer against the problem's
    gold answer, shown the problem's question (:func:`user_text`), as the paper's judge is.
    Raises what the judge raises (:class:`~mm_eureka_plugin.prm.judges.JudgeUnavailable`), and
    :class:`EvalError` when it does not return one verdict per answer."""
    answers = [mmk12_eval_answer(response) for response in responses]
    verdicts = list(answer_judge(answers, record.answer, question=user_text(record.messages)))
    if len(verdicts) != len(answers):
        raise EvalError(
            f"the judge returned {len(verdicts)} verdicts for {len(answers)} answers; it must return one each."
        )
    return [
        {"answer": answer[-ANSWER_CHARS:].strip(), "correct": bool(verdict)}
        for answer, verdict in zip(answers, verdicts)
    ]


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
    for where, row in read_done(path, "judged"):
        reason = _result_row_problem(row)
        if reason is not None:
            raise EvalError(f"{where}: {reason}; not a row `mm-eureka eval` writes. Delete the directory.")
        if row["id"] in done:
            raise EvalError(f"{where}: problem {row['id']} again; delete the line.")
        if row["id"] not in records:
            unknown.append(row["id"])
        done[row["id"]] = row
    return _checked_ids(done, unknown, path, benchmark)


def _checked_ids(done: dict[str, dict[str, Any]], unknown: list[str], path: Path, benchmark: Path) -> dict:
    if unknown:
        raise EvalError(
            f"{path}: {len(unknown)} problem id(s) not in the benchmark {benchmark}: {listed(unknown)}. "
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
    try:
        return PRMScorer(prm, batch_size=batch_size)
    except PRMCheckpointError as exc:
        raise EvalError(str(exc)) from None
    except OSError as exc:
        raise EvalError(f"{prm}: cannot load the PRM checkpoint: {exc}") from None


def judge_problem(
    record: PromptRecord,
    responses: list[str],
    reward: Reward | None,
    scorer: PRMScorer | None = None,
    splitter: StepSplitter | None = None,
    benchmark: str | Path = "benchmark",
    *,
    judged: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One result per response: ``{"answer", "correct", "step_scores"}`` (and ``"reward_error"``
    when the reward failed on it, which counts as wrong).

    ``judged``: the ``{"answer", "correct"}`` of each response as a judge decided them
    (:func:`judge_answers`), taken instead of asking ``reward`` (then None). The images are loaded
    onto MM-Eureka's pixel budget, as training and rollout see them, when the reward or the
    ``scorer`` reads them; an image that cannot be loaded raises :class:`EvalError` naming the
    benchmark row. With a ``scorer``, responses are split by ``splitter`` and those with steps are
    scored in one call.
    """
    images = []
    if judged is None or scorer is not None:
        try:
            images = load_record_images(record)
        except ImageError as exc:
            raise EvalError(f"{benchmark}: row {record.row}: {exc}") from None
    out = judged if judged is not None else reward_candidates(record, responses, reward, images)
    step_scores: list[list[float]] = [[] for _ in responses]
    if scorer is not None:
        steps = [[step.text for step in splitter(response)] for response in responses]
        with_steps = [i for i, s in enumerate(steps) if s]
        scores = scorer.score([PRMInput(record.messages, steps[i], images) for i in with_steps])
        for i, values in zip(with_steps, scores):
            step_scores[i] = values
    return [{**candidate, "step_scores": values} for candidate, values in zip(out, step_scores)]


def reward_candidates(
    record: PromptRecord, responses: list[str], reward: Reward, images: list[Any]
) -> list[dict[str, Any]]:
    """``{"answer", "correct"[, "reward_error"]}`` per response as ``reward`` judges it (correct when
    the result's ``score``, else its ``reward``, is >= 1; a failure counts as wrong)."""
    prompt = user_text(record.messages)
    metadata = {"id": problem_id(record), **record.metadata}
    samples = [RewardSample(r, record.answer, prompt, images, metadata) for r in responses]
    out = []
    for response, result in zip(responses, score_samples(reward, samples)):
        score = result.reward if result.score is None else result.score
        candidate = {"answer": answer_text(response, ANSWER_CHARS), "correct": score >= 1}
        if result.error is not None:
            candidate["reward_error"] = result.error
        out.append(candidate)
    return out
