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
- ``bon/<name>`` for each aggregator: the PRM's Best-of-N pick. Among the candidates that have
  step scores, the one with the highest ``aggregator(step_scores)`` is picked (ties: the earliest);
  the problem scores 1 if it is correct. Candidates without step scores cannot be picked.

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

    Raises ``ValueError`` naming the problem for: no problems at all, a duplicate id, a category
    named "overall" (reserved), a problem with no candidates, a problem where no candidate has
    step scores (when aggregators are given), and an aggregator that fails or returns NaN.
    """
    if not problems:
        raise ValueError("no problems to evaluate.")
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
    scored = [(i, c) for i, c in enumerate(candidates) if c.step_scores]
    if aggregators and not scored:
        raise ValueError(
            f"problem {problem.id!r}: no candidate has step scores, so no PRM can pick one; "
            "score the candidates with the PRM or drop the problem."
        )
    for name, aggregate in aggregators.items():
        best, best_value = None, -math.inf
        for index, candidate in scored:
            try:
                value = float(aggregate(candidate.step_scores))
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"problem {problem.id!r}, candidate {index}: aggregator {name!r} failed: {exc}"
                ) from exc
            if math.isnan(value):
                raise ValueError(f"problem {problem.id!r}, candidate {index}: aggregator {name!r} returned NaN.")
            if best is None or value > best_value:
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
