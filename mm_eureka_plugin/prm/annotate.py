"""``mm-eureka prm annotate``: OmegaPRM step labels for every problem of a data file, resumable.

Per problem (a row of any ``data_format``; its id is ``metadata["id"]``, else its row number), in
file order: the judge checks the gold answer (a problem it cannot judge is reported and written
as ``{"id", "row", "skipped": why}``, never labelled); then :class:`~mm_eureka_plugin.prm.mcts.OmegaPRM`
searches with the policy, whose k rollouts of a state are one batched call continuing the
chat-templated prompt (images included) plus the state's steps written by the splitter's
``join``. The tree (:meth:`~mm_eureka_plugin.prm.mcts.SearchTree.to_json`, plus ``row``) is
appended to the output jsonl and flushed as the problem finishes (a
:mod:`~mm_eureka_plugin.runfiles` run file). A rerun skips the ids already there (a truncated
last line is dropped with a warning and its problem searched again), so an interruption, or a
judge endpoint that stays down (:class:`~mm_eureka_plugin.prm.judges.JudgeUnavailable`, raised
after its retries), loses no finished tree.

The policy samples with :mod:`mm_eureka_plugin.eval.generate`'s generators and a
:class:`~mm_eureka_plugin.eval.generate.SamplingConfig`, seeded per problem from ``(seed, problem
index)`` and the policy call's number, so a resumed run searches a problem as an uninterrupted one
would (with the same backend).
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mm_eureka_plugin.data.convert import detect_format
from mm_eureka_plugin.eval.generate import SEED_STRIDE, SamplingConfig, make_generator, prompt_and_images
from mm_eureka_plugin.eval.inputs import EvalError, read_problems
from mm_eureka_plugin.prm.mcts import OmegaPRM, SearchConfig
from mm_eureka_plugin.registry import resolve
from mm_eureka_plugin.runfiles import appending, read_done

logger = logging.getLogger(__name__)


@dataclass
class AnnotateSummary:
    """What a run did: problems searched and skipped now, problems already done, nodes labelled, rollouts."""

    searched: int = 0
    skipped: int = 0
    already_done: int = 0
    labelled_nodes: int = 0
    rollouts: int = 0


def annotate(
    data: str | Path,
    out: str | Path,
    *,
    policy: str | Path,
    sampling: SamplingConfig,
    search: SearchConfig | None = None,
    data_format: str | None = None,
    format_params: dict[str, Any] | None = None,
    judge: str = "math_verify",
    judge_params: dict[str, Any] | None = None,
    splitter: str = "tags",
    progress: bool = False,
) -> AnnotateSummary:
    """Search every problem of ``data`` not yet in ``out`` with OmegaPRM's ``search`` settings,
    the checkpoint ``policy`` writing the rollouts with ``sampling`` (see the module docstring).

    ``data_format`` is a ``data_format`` name or reference built with ``format_params`` (default:
    detected from the columns); ``judge`` a ``judge`` built with ``judge_params``; ``splitter`` a
    ``step_splitter`` with a ``join``. Raises ``EvalError`` for a bad data file or output line,
    ``ComponentError`` for an unknown component or parameter, and ``JudgeUnavailable`` from the judge.
    """
    search = search or SearchConfig()
    data, out = Path(data), Path(out)
    records = read_problems(data, resolve("data_format", data_format or detect_format(data), **(format_params or {})))
    split = resolve("step_splitter", splitter)
    if not callable(getattr(split, "join", None)):
        raise EvalError(f"step splitter {splitter!r} has no join(steps): annotate cannot write a state's steps.")
    answer_judge = resolve("judge", judge, **(judge_params or {}))
    done = {_tree_id(row, where) for where, row in read_done(out, "searched")}
    todo = [(index, pid) for index, pid in enumerate(records) if pid not in done]
    summary = AnnotateSummary(already_done=len(records) - len(todo))
    if not todo:
        return summary
    max_images = max(len(records[pid].images) for _, pid in todo)
    generator = make_generator(policy, sampling, max_images)
    calls_per_problem = search.max_rollouts // search.k + 1
    bar = tqdm(
        total=len(records),
        initial=summary.already_done,
        desc="Annotating",
        unit="problem",
        file=sys.stderr,
        disable=not progress,
    )
    start = time.perf_counter()
    with appending(out) as append, bar:
        for index, pid in todo:
            record = records[pid]
            why = answer_judge.check_gold(record.answer)
            if why is not None:
                logger.warning("problem %s (row %d) skipped: %s", pid, record.row, why)
                row = {"id": pid, "row": record.row, "skipped": why}
                summary.skipped += 1
            else:
                prompt, images = prompt_and_images(generator.processor, record)
                calls = itertools.count((sampling.seed * SEED_STRIDE + index) * calls_per_problem)

                def rollouts(_, prefix, k, prompt=prompt, images=images, calls=calls):
                    return generator.complete(prompt + split.join(prefix), images, k, next(calls))

                tree = OmegaPRM(rollouts, answer_judge, split, search).search(record, record.answer, pid)
                row = {**tree.to_json(), "row": record.row}
                summary.searched += 1
                summary.labelled_nodes += len(tree.nodes) - 1
                summary.rollouts += tree.rollouts
                bar.set_postfix(
                    rollouts_per_s=f"{summary.rollouts / (time.perf_counter() - start):.1f}",
                    budget=f"{tree.rollouts}/{search.max_rollouts} rollouts, "
                    f"{len(tree.searches)}/{search.max_searches} searches",
                )
            append(row)
            bar.update()
    return summary


def _tree_id(row: Any, where: str) -> str:
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        raise EvalError(f'{where}: not a tree row ({{"id": ..., ...}}); is this the annotate output file?')
    return row["id"]
