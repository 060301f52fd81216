"""Step labelling cost: OmegaPRM's tree search against naive per-step Monte Carlo, same policy and judge.

Both label the simulated problems of ``tests/prm/simulated_policy.py`` (step error rates
drawn from [0.02, 0.2], 4-10 steps), whose first wrong steps are known, with k rollouts per state
estimate. Ours: :class:`~mm_eureka_plugin.prm.mcts.OmegaPRM` with its default budgets. Baseline
(Math-Shepherd's per-step MC): ``--solutions`` sampled solutions per problem, each step prefix
estimated with k rollouts (the finished solution is judged, free); a wrong solution's first error
is the first prefix with MC = 0. Reports, as medians over ``--repeats`` seeds: rollouts per labelled
step (an MC label of a state), rollouts per located first error, and how often the located error
is the true one; then the ratios ours / baseline.

    .venv/bin/python benchmarks/prm_search.py [--problems 50] [--k 16] [--solutions 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

from common import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "prm"))  # the simulated policy

from simulated_policy import RIGHT, SimulatedPolicy, SimulatedProblem, first_error, judge  # noqa: E402

from mm_eureka_plugin.prm.mcts import OmegaPRM, SearchConfig  # noqa: E402
from mm_eureka_plugin.prm.steps import TagSplitter  # noqa: E402


def problems(count: int, seed: int) -> list[SimulatedProblem]:
    rng = random.Random(seed)
    return [SimulatedProblem(tuple(rng.uniform(0.02, 0.2) for _ in range(rng.randint(4, 10)))) for _ in range(count)]


def omega(items: list[SimulatedProblem], k: int, seed: int) -> dict[str, float]:
    search = OmegaPRM(SimulatedPolicy(seed), judge, TagSplitter(), SearchConfig(k=k))
    rollouts = labels = located = right = 0
    for i, problem in enumerate(items):
        tree = search.search(problem, RIGHT, str(i))
        rollouts += tree.rollouts
        labels += len(tree.nodes) - 1  # every state but the root carries an MC label
        for result in tree.searches:
            if result.first_error is not None:
                located += 1
                right += result.first_error == first_error(result.rollout)
    return {"rollouts": rollouts, "labels": labels, "located": located, "right": right}


def naive(items: list[SimulatedProblem], k: int, solutions: int, seed: int) -> dict[str, float]:
    policy, split = SimulatedPolicy(seed), TagSplitter()
    rollouts = labels = located = right = located_cost = 0
    for problem in items:
        for text in policy(problem, (), solutions):
            steps = tuple(step.text for step in split(text))
            mcs = []
            for cut in range(1, len(steps)):  # the finished solution is judged, not rolled out
                outcomes = judge(policy(problem, steps[:cut], k), RIGHT)
                rollouts += k
                mcs.append(sum(outcomes) / k)
            labels += len(steps)
            if not judge([text], RIGHT)[0]:
                zero = next((i for i, mc in enumerate(mcs) if mc == 0), len(steps) - 1)
                located += 1
                located_cost += k * min(zero + 1, len(steps) - 1)  # a scan stops at the first MC = 0
                right += zero + 1 == first_error(steps)
    return {"rollouts": rollouts, "labels": labels, "located": located, "right": right, "cost": located_cost}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--solutions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    for seed in range(args.repeats):
        items = problems(args.problems, seed)
        ours, base = omega(items, args.k, seed), naive(items, args.k, args.solutions, seed)
        rows.append(
            {
                "ours_per_label": ours["rollouts"] / ours["labels"],
                "base_per_label": base["rollouts"] / base["labels"],
                "ours_per_error": ours["rollouts"] / ours["located"],
                "base_per_error": base["cost"] / base["located"],
                "ours_right": ours["right"] / ours["located"],
                "base_right": base["right"] / base["located"],
            }
        )
    med = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    print(machine_line("no model: a simulated policy"))
    print(
        f"{args.problems} problems, k = {args.k}, baseline {args.solutions} solutions per problem, "
        f"medians over {args.repeats} seeds\n"
    )
    print("| method | rollouts per labelled step | rollouts per located first error | located = true |")
    print("|---|---|---|---|")
    print(
        f"| per-step MC (baseline) | {med['base_per_label']:.2f} | {med['base_per_error']:.1f} "
        f"| {med['base_right']:.3f} |"
    )
    print(f"| OmegaPRM (ours) | {med['ours_per_label']:.2f} | {med['ours_per_error']:.1f} | {med['ours_right']:.3f} |")
    print(
        f"\nratio ours / baseline: rollouts per labelled step {med['ours_per_label'] / med['base_per_label']:.3f}, "
        f"per located first error {med['ours_per_error'] / med['base_per_error']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
