"""Best-of-N evaluation: how often N sampled solutions, and a PRM's pick among them, are right.

MM-PRM (arXiv 2505.13427, Best-of-N experiments; N = 16) samples N solutions per problem, scores
each solution's steps with the PRM, and keeps the solution whose aggregated step score is highest.
Its baselines are a random pick and pass@k. :func:`evaluate` computes, per problem and then as the
mean over problems (overall and per category), these fractions in [0, 1]:

- ``pass@1``: the fraction of a problem's candidates that are correct. This is the unbiased
  estimate of one random sample's accuracy, so it is also the paper's "random" baseline (the
  expected accuracy of a uniformly random pick among the N); there is no separate ``random`` key.
- ``maj@N``: majority voting (self-consistency). Answers are compared after ``strip()`` and
  collapsing runs of whitespace to one space, case-sensitive otherwise; the empty answer is an
  answer like any other. The most frequent answer wins; among tied answers, the one that occurs
  first in the candidate order. The vote is right if any candidate with the winning answer is
  correct (candidates with equal answers normally agree; the rule settles a judge that did not).
- ``pass@N``: 1 if any candidate is correct (the oracle pick, an upper bound for every pick).
- ``bon/<name>`` for each aggregator: the PRM's Best-of-N pick, the candidate with the highest
  ``aggregator(step_scores)``; the problem scores 1 if it is correct. Ties go to the earliest
  candidate, as MM-PRM's ``prm_score.index(max(prm_score))`` (``eval/prm/extract_calculate.py``).

Candidates without steps (no step scores) stay candidates, as in MM-PRM: they count in N and in
every baseline, and a PRM can pick them. MM-PRM scores them 0 in every aggregation; we rank them by
the aggregator's ``no_steps_score`` (:class:`~mm_eureka_plugin.prm.aggregate.StepScoreAggregator`):
0, the same as MM-PRM, for the aggregations whose values lie in [0, inf) (min, last, product,
average, max, mean_odds), where 0 is the floor, so such a candidate wins only if every candidate
scores 0 and it comes first. For ``sum_logprob`` and ``sum_logit``, whose values go below 0,
MM-PRM's 0 ranks a candidate without steps above real ones (for sum_logprob, above any with one
step scored below 1); we rank it at -inf instead, never above one with steps. (MM-PRM's scoring
scripts also put one ``<prm>`` tag in the prompt of a candidate without steps, which shifts the
scores of the candidates after it by one step; ours score each candidate's own steps.) An
aggregator without a ``no_steps_score`` attribute (e.g. a plain function) ranks such candidates at
-inf too.

N, the number of candidates per problem, is reported as ``n_min`` and ``n_max`` (equal when all
problems have the same N). Nothing here is random: the result is a function of the input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

Aggregator = Callable[[Sequence[float]], float]

OVERALL = "overall"
BASELINES = ("pass@1", "maj@N", "pass@N")


@dataclass(frozen=True)
class Candidate:
    """One generated solution of a problem.

    ``answer`` is its extracted final answer (for majority voting), ``correct`` whether the
    accuracy reward judged it right, ``step_scores`` its PRM step scores (empty when no PRM ran).
    """

    answer: str
    correct: bool
    step_scores: tuple[float, ...] = ()


@dataclass(frozen=True)
class Problem:
    """A problem's N candidates; ``category`` (e.g. the benchmark or subject) groups problems in the report."""

    id: str
    candidates: tuple[Candidate, ...]
    category: str | None = None


@dataclass
class Report:
    """Metrics (fractions in [0, 1]) overall and per category; ``counts`` holds problems per category and "overall".

    Metric keys, in order: ``pass@1``, ``maj@N``, ``pass@N``, then ``bon/<name>`` in the order the
    aggregators were given. Problems without a category count only in ``overall``.
    """

    overall: dict[str, float]
    by_category: dict[str, dict[str, float]]
    counts: dict[str, int]
    n_min: int
    n_max: int

    @property
    def metrics(self) -> list[str]:
        """The metric keys in column order."""
        return list(self.overall)

    def to_json(self) -> dict:
        """A JSON-ready dict: ``overall``, ``by_category``, ``counts``, ``n_min``, ``n_max``."""
        return {
            "overall": dict(self.overall),
            "by_category": {name: dict(values) for name, values in self.by_category.items()},
            "counts": dict(self.counts),
            "n_min": self.n_min,
            "n_max": self.n_max,
        }

    def to_markdown(self) -> str:
        """A Markdown table, one row for overall then one per category (sorted), values in percent."""
        n = str(self.n_min) if self.n_min == self.n_max else f"{self.n_min}-{self.n_max}"
        lines = [
            f"N = {n}",
            "",
            "| subset | count | " + " | ".join(self.metrics) + " |",
            "|---|---:|" + "---:|" * len(self.metrics),
        ]
        rows = [(OVERALL, self.overall)] + sorted(self.by_category.items())
        for name, values in rows:
            cells = [f"{100 * values[metric]:.1f}" for metric in self.metrics]
            lines.append(f"| {name} | {self.counts[name]} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path) -> Path:
        """Write a PNG bar chart of the overall metrics to ``path`` and return it.

        One bar per metric (baselines grey, PRM picks blue) with its value in percent; dashed lines
        mark pass@1 (a random pick) and pass@N (the best any pick can do).
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        values = [100 * self.overall[metric] for metric in self.metrics]
        colors = ["tab:gray" if metric in BASELINES else "tab:blue" for metric in self.metrics]
        fig = Figure(figsize=(max(4.0, 0.8 * len(values) + 1.5), 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        bars = ax.bar(range(len(values)), values, color=colors)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.axhline(values[0], color="tab:red", linestyle="--", linewidth=1, label="pass@1 (random pick)")
        ax.axhline(values[2], color="tab:green", linestyle="--", linewidth=1, label="pass@N (oracle pick)")
        ax.set_xticks(range(len(values)), self.metrics, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("accuracy (%)", fontsize=8)
        ax.set_ylim(0, 118)
        n = str(self.n_min) if self.n_min == self.n_max else f"{self.n_min}-{self.n_max}"
        ax.set_title(f"Best-of-N, N = {n}, {self.counts[OVERALL]} problems", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", ncols=2)
        ax.grid(True, axis="y", alpha=0.3)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)
        return path


def evaluate(problems: Sequence[Problem], aggregators: Mapping[str, Aggregator]) -> Report:
    """Best-of-N metrics (see the module docstring) of ``problems``, one ``bon/<name>`` per aggregator.

    Raises ``ValueError`` for: no problems at all, aggregators given but no candidate of any problem
    with step scores (no PRM ran), and, naming the problem, for a duplicate id, a category named
    "overall" (reserved), a problem with no candidates, and an aggregator that fails or returns NaN.
    """
    if not problems:
        raise ValueError("no problems to evaluate.")
    if aggregators and not any(c.step_scores for problem in problems for c in problem.candidates):
        raise ValueError(
            "no candidate of any problem has step scores, so no PRM can pick one; "
            "score the candidates with the PRM, or evaluate without aggregators."
        )
    seen: set[str] = set()
    scores: list[dict[str, float]] = []
    for problem in problems:
        if problem.id in seen:
            raise ValueError(f"problem id {problem.id!r} occurs more than once; problem ids must be unique.")
        seen.add(problem.id)
        if problem.category == OVERALL:
            raise ValueError(f"problem {problem.id!r}: category {OVERALL!r} is reserved for the overall row.")
        scores.append(_score_problem(problem, aggregators))

    def mean(rows: list[dict[str, float]]) -> dict[str, float]:
        return {metric: math.fsum(row[metric] for row in rows) / len(rows) for metric in rows[0]}

    groups: dict[str, list[dict[str, float]]] = {}
    for problem, row in zip(problems, scores):
        if problem.category is not None:
            groups.setdefault(problem.category, []).append(row)
    sizes = [len(problem.candidates) for problem in problems]
    return Report(
        overall=mean(scores),
        by_category={name: mean(rows) for name, rows in sorted(groups.items())},
        counts={OVERALL: len(problems), **{name: len(rows) for name, rows in sorted(groups.items())}},
        n_min=min(sizes),
        n_max=max(sizes),
    )


def _score_problem(problem: Problem, aggregators: Mapping[str, Aggregator]) -> dict[str, float]:
    candidates = problem.candidates
    if not candidates:
        raise ValueError(f"problem {problem.id!r} has no candidates.")
    row = {
        "pass@1": sum(c.correct for c in candidates) / len(candidates),
        "maj@N": float(_majority_correct(candidates)),
        "pass@N": float(any(c.correct for c in candidates)),
    }
    for name, aggregate in aggregators.items():
        no_steps = float(getattr(aggregate, "no_steps_score", -math.inf))
        best, best_value = None, -math.inf
        for index, candidate in enumerate(candidates):
            if not candidate.step_scores:
                value = no_steps
            else:
                try:
                    value = float(aggregate(candidate.step_scores))
                except (TypeError, ValueError) as exc:
                    raise ValueError(
                        f"problem {problem.id!r}, candidate {index}: aggregator {name!r} failed: {exc}"
                    ) from exc
            if math.isnan(value):
                raise ValueError(f"problem {problem.id!r}, candidate {index}: aggregator {name!r} returned NaN.")
            if best is None or value > best_value:  # ties: the earliest, as list.index(max(...))
                best, best_value = candidate, value
        row[f"bon/{name}"] = float(best.correct)
    return row


def _majority_correct(candidates: Sequence[Candidate]) -> bool:
    """Whether the most frequent answer (ties: the first to occur) is right, i.e. any candidate with it is correct."""
    votes: dict[str, list[Candidate]] = {}  # insertion order = first occurrence
    for candidate in candidates:
        votes.setdefault(" ".join(candidate.answer.split()), []).append(candidate)
    winner = max(votes.values(), key=len)  # max keeps the first of equal keys
    return any(c.correct for c in winner)
