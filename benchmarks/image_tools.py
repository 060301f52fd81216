"""Learning to use a tool: the zoom task with image_tools against single_turn and the blank control, over seeds.

For each seed k (1..``--seeds``), runs ``mm-eureka train recipes/zoom-cpu.yaml`` three times with
``train.seed`` and ``plugin.synthetic_task.seed`` set to k (a new cold-started tiny model, new
images, new sampling) and the same number of steps: with ``image_tools`` (the policy may crop the
square where the colour shows), with ``single_turn`` (the baseline: one answer, from the
56x56 image where the colour is averaged away) and with ``image_tools`` on the blank control
(every square grey: no crop shows a colour). Chance is 0.25. For each run it reports greedy
accuracy on the held-out images at every evaluation (``eval_all_pass1``), the share of samples that
called the tool and of calls that failed over the last 10 steps, the wall time and peak memory;
then the median final accuracy per condition and the ratio image_tools / single_turn.

    .venv/bin/python benchmarks/image_tools.py [--seeds 3] [--out DIR] [--set KEY=VALUE ...]

``--set`` is passed to every run (e.g. ``--set openrlhf.train.num_episodes=8`` for more steps).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from common import machine_line, train_run

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "zoom-cpu.yaml"
CONDITIONS = {
    "image_tools": {},
    "single_turn (baseline)": {"plugin.rollout_executor": "single_turn"},
    "image_tools, blank control": {"plugin.synthetic_task.blank": "true"},
}
"""Condition -> the ``--set`` items that make it from the recipe."""
LAST = 10
"""Steps at the end over which tool use is averaged."""


def run(out_dir: Path, seed: int, condition: dict, sets: list[str]) -> dict:
    """One training run; returns its figures."""
    items = {"openrlhf.train.seed": seed, "plugin.synthetic_task.seed": seed, **condition}
    seconds, peak, train, metrics = train_run(RECIPE, out_dir, [f"{k}={v}" for k, v in items.items()] + sets)
    evals = {step: m["eval_all_pass1"] for step, m in metrics.items()}
    # the last steps that trained (a step the data ran out in logs only its rollout); single_turn logs none
    last = [train[step] for step in sorted(train) if "tool_calls" in train[step]][-LAST:]
    calls = statistics.mean(m["tool_calls"] for m in last) if last else None
    errors = statistics.mean(m["tool_errors"] for m in last) if last else None
    return {
        "seed": seed,
        "seconds": round(seconds, 1),
        "peak_gib": round(peak / 2**30, 2),
        "steps": max(train),
        "eval_accuracy": evals,
        "final_accuracy": evals[max(evals)],
        "tool_calls": None if calls is None else round(calls, 3),
        "failed_calls": round(errors / calls, 3) if calls else None,
    }


def report(results: dict[str, list[dict]]) -> str:
    """The table of every run, the median final accuracy per condition, and the ratio to the baseline."""
    rows = [
        f"| seed | condition | steps | greedy accuracy by step (held-out) | final | samples calling the tool "
        f"(last {LAST} steps) | calls that failed | wall s | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    seeds = sorted({r["seed"] for runs in results.values() for r in runs})
    for seed in seeds:
        for name, runs in results.items():
            r = next(run for run in runs if run["seed"] == seed)
            curve = ", ".join(f"{step}: {acc:.2f}" for step, acc in sorted(r["eval_accuracy"].items()))
            calls = "-" if r["tool_calls"] is None else f"{r['tool_calls']:.2f}"
            failed = "-" if r["failed_calls"] is None else f"{r['failed_calls']:.2f}"
            rows.append(
                f"| {seed} | {name} | {r['steps']} | {curve} | {r['final_accuracy']:.2f} | {calls} | "
                f"{failed} | {r['seconds']:.0f} | {r['peak_gib']:.2f} |"
            )
    medians = {name: statistics.median(r["final_accuracy"] for r in runs) for name, runs in results.items()}
    tools, baseline = medians["image_tools"], medians["single_turn (baseline)"]
    ratio = f"{tools / baseline:.2f}" if baseline else "n/a (baseline 0)"
    return "\n".join(
        [
            machine_line(f"seeds {', '.join(map(str, seeds))}, chance 0.25"),
            "",
            *rows,
            "",
            "Median final greedy accuracy: " + ", ".join(f"{name} {value:.2f}" for name, value in medians.items()),
            f"ratio image_tools / single_turn (baseline), final accuracy: {ratio}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N, one run per condition each (default: 3)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-image-tools")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in CONDITIONS}
    for seed in range(1, args.seeds + 1):
        for index, (name, condition) in enumerate(CONDITIONS.items()):
            results[name].append(run(args.out / f"seed{seed}" / f"condition{index}", seed, condition, args.set))
        finals = ", ".join(f"{name} {runs[-1]['final_accuracy']:.2f}" for name, runs in results.items())
        print(f"seed {seed}: {finals}", flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
