"""``make bench``: run every benchmark and write ``benchmarks/RESULTS.md``.

Each benchmark is a script in this folder that prints a markdown table of ours against a named
baseline measured in the same run (medians of repeated runs) and the ratio. This runs them one
after another with their default settings (``--quick``: the tiny settings CI uses, which say
nothing about speed) and writes their output, with the command and the machine, to ``--out``.

    .venv/bin/python benchmarks/run_all.py [--only NAME ...] [--quick] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from common import machine_line, timed

HERE = Path(__file__).resolve().parent

BENCHMARKS = {
    "accuracy_reward": "--groups 4 --n 4 --adversarial 0.1 --latency-samples 3 --repeats 1".split(),
    "rollout_prompts": ["--prompts", "2", "--n", "2", "--size", "56x56", "--repeats", "1"],
    "rollout_engines": ["--prompts", "2", "--n", "2", "--repeats", "1", "--eager"],
    "policy_loss": ["--iters", "2", "--repeats", "1", "--batch", "2", "--tokens", "8"],
    "prm_search": ["--problems", "4", "--k", "4", "--repeats", "1"],
    "prm_scoring": ["--solutions", "2", "--steps", "3", "--repeats", "1"],
    "data_pipeline": ["--rows", "20", "--images", "4", "--repeats", "1"],
    "cpu_learning": None,
    "image_tools": None,
}
"""Benchmark script name -> its tiny ``--quick`` arguments (None: too long to run quickly; skipped)."""


def describe(name: str) -> str:
    """The first line of the benchmark script's docstring."""
    docstring = ast.get_docstring(ast.parse((HERE / f"{name}.py").read_text(encoding="utf-8"))) or name
    return docstring.splitlines()[0]


_LOG_LINE = re.compile(
    r"^(?:\[\d{4}-\d\d-\d\d [\d:,]+\] \[(?:DEBUG|INFO|WARNING)\]|(?:DEBUG|INFO|WARNING) \d\d-\d\d [\d:]+ \[[^\]]*\]) .*\n?",
    re.MULTILINE,
)


def _without_logs(text: str) -> str:
    """``text`` without the log lines DeepSpeed and vLLM print on stdout when imported."""
    return _LOG_LINE.sub("", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run these benchmarks only")
    parser.add_argument("--quick", action="store_true", help="tiny inputs (a check that each runs, not a measure)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)

    import torch

    sections, failed = [], []
    for name in args.only or list(BENCHMARKS):
        extra = BENCHMARKS[name] if args.quick else []
        if extra is None:
            sections.append(f"## {name}: {describe(name)}\n\nNot run with --quick (it trains for minutes).\n")
            continue
        command = [sys.executable, str(HERE / f"{name}.py"), *extra]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        seconds, run = timed(partial(subprocess.run, command, capture_output=True, text=True))
        shown = " ".join(["python", f"benchmarks/{name}.py", *extra])
        body = (
            _without_logs(run.stdout).strip()
            if run.returncode == 0
            else f"FAILED (exit {run.returncode}):\n\n```\n{run.stderr[-3000:]}\n```"
        )
        if run.returncode:
            failed.append(name)
        sections.append(f"## {name}: {describe(name)}\n\n`{shown}` ({seconds:.0f} s)\n\n{body}\n")
    gpu_note = (
        ""
        if torch.cuda.is_available()
        else "\nNo GPU on this machine: the GPU measurements (a Qwen2.5-VL-3B-sized forward + backward with "
        "CPGD vs PPO, PRM scoring throughput on GPU) were not taken.\n"
    )
    header = (
        f"# Benchmark results\n\nWritten by `make bench` ({'quick: tiny inputs, not a measure' if args.quick else 'full'}) "
        f"on {time.strftime('%Y-%m-%d %H:%M')}. {machine_line()}\n{gpu_note}"
    )
    args.out.write_text(header + "\n" + "\n".join(sections), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
