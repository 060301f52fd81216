"""Benchmarks are scripts, not timed tests: each runs here on a tiny input."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_prm_scoring_benchmark_runs_and_reports_the_ratio():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "prm_scoring.py"), "--solutions", "2", "--steps", "3", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| one forward per step prefix (baseline) | 6 |" in result.stdout
    assert "| one forward per solution (ours) | 2 |" in result.stdout
    assert "ratio ours / baseline: tokens 0." in result.stdout


def test_cpu_learning_benchmark_explains_itself():
    # Its full run takes ~13 minutes; tests/patches/cpu/test_smoke_run.py is its short CI version.
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cpu_learning.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "blank-image control" in " ".join(result.stdout.split())


def test_prm_search_benchmark_runs_and_reports_the_ratios():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "prm_search.py"), "--problems", "4", "--k", "4", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| per-step MC (baseline) |" in result.stdout and "| OmegaPRM (ours) |" in result.stdout
    assert "ratio ours / baseline: rollouts per labelled step " in result.stdout


def test_policy_loss_benchmark_runs_and_reports_the_ratio():
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "policy_loss.py"),
            "--batch",
            "2",
            "--tokens",
            "8",
            "--iters",
            "2",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| OpenRLHF PolicyLoss(ppo) (baseline) |" in result.stdout
    assert "ratio ours / baseline: " in result.stdout
