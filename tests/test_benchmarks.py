"""Benchmarks are scripts, not timed tests: `make bench`'s runner runs each here on a tiny input."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_every_benchmark_runs_on_a_tiny_input_and_results_md_reports_each(tmp_path):
    out = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert "Written by `make bench` (quick: tiny inputs, not a measure)" in text and "Machine: " in text
    assert "No GPU on this machine" in text  # CI has none: the gap is explained, not left
    # accuracy_reward: 4 groups of 4
    assert "16 responses in 4 groups of 4" in text and "| MM-Eureka per sample, one process (baseline) |" in text
    assert "| ours, one call per group |" in text and "Latency of one adversarial sample alone (3 samples" in text
    # rollout_prompts: 2 prompts x 2 samples
    assert "2 prompts x 2 samples" in text and "| patched, once per group (ours) |" in text
    # rollout_engines: 2 prompts x 2 samples on each engine
    assert "2 prompts x 2 samples, temperature 1.0; vLLM eager" in text
    assert "| transformers |" in text and "| vllm |" in text and "Ratio vllm / transformers: start " in text
    # policy_loss
    assert "| OpenRLHF PolicyLoss(ppo) (baseline) |" in text and "| CPGD through PluginPolicyLoss (ours) |" in text
    # prm_search
    assert "| per-step MC (baseline) |" in text and "ratio ours / baseline: rollouts per labelled step " in text
    # prm_scoring: 2 solutions x 3 steps
    assert (
        "| one forward per step prefix (baseline) | 6 |" in text and "| one forward per solution (ours) | 2 |" in text
    )
    # data_pipeline: 20 rows
    assert "| data check |" in text and "ratio resize / no resize (time): " in text
    # cpu_learning trains for minutes: named, and said to be skipped
    assert "## cpu_learning: Learning that needs the images" in text and "Not run with --quick" in text
    assert "## image_tools: Learning to use a tool" in text
    assert text.count("ratio ours / baseline") == 6


def test_cpu_learning_benchmark_explains_itself():
    # Its full run takes ~13 minutes; tests/patches/cpu/test_smoke_run.py is its short CI version.
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cpu_learning.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "blank-image control" in " ".join(result.stdout.split())


def test_image_tools_benchmark_explains_itself():
    # A full run trains three conditions per seed for minutes each; tests/patches/cpu/test_rollout_plugin_run.py
    # trains a multi-turn rollout in CI.
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "image_tools.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "image_tools against single_turn and the blank control" in " ".join(result.stdout.split())
