"""OpenRLHF's own training loop on CPU: `mm-eureka train recipes/smoke-cpu.yaml`, shortened.

One run, killed in the middle of a step after two checkpointed steps, then resumed with
``--resume``. Its reward has a component that raises on every sample whose answer is "red"
(:mod:`flaky_reward`), so errors are counted while training goes on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FLAKY = Path(__file__).with_name("flaky_reward.py")

TRAIN_METRICS = (
    "reward",
    "accuracy",
    "format",
    "reward_error",
    "reward_seconds",
    "response_length",
    "policy_loss",
    "ppo_clip_ratio",
    "policy_drift",
    "timing/generation",
    "timing/make_experience",
    "timing/ppo_train",
    "timing/broadcast",
)


def run_settings(run_dir: Path) -> dict:
    """The ``--set`` items of the shortened run."""
    reward = (
        "{name: weighted, components: [{name: accuracy, weight: 1.0}, {name: format, weight: 0.0}, "
        f"{{name: '{FLAKY}:make_flaky_reward', weight: 0.0}}]}}"
    )
    return {
        "openrlhf.ckpt.output_dir": run_dir,
        "openrlhf.ckpt.path": run_dir / "checkpoints",
        "openrlhf.logger.tensorboard_dir": run_dir / "tensorboard",
        "openrlhf.train.num_episodes": 1,
        "openrlhf.eval.steps": 2,
        "plugin.synthetic_task.train_size": 48,
        "plugin.synthetic_task.eval_size": 8,
        "plugin.reward": reward,
        # The filter stays on (scores flow to OpenRLHF's dynamic filtering) but keeps every group,
        # so that the run has a known number of steps: 48 prompts / 8 per step.
        "plugin.accuracy_filter": "[0.0, 1.0]",
    }


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def checkpointed_step(run_dir: Path) -> int:
    latest = run_dir / "checkpoints" / "_actor" / "latest"
    # "global_stepN", or "best_global_stepN" after an evaluation that improved
    return int(latest.read_text().rpartition("global_step")[2]) if latest.exists() else 0


def kill_group(process: subprocess.Popen) -> None:
    """Kill the run and every process it started (Ray's too), as a crash would."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # it has already ended
        pass
    process.wait(timeout=60)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, smoke_train):
    """Run until step 2 is checkpointed, kill the run in step 3, resume it to the end."""
    run_dir = tmp_path_factory.mktemp("smoke-cpu")
    log = (run_dir / "first.log").open("w")
    first = subprocess.Popen(
        smoke_train(run_settings(run_dir)), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.time() + 900
    try:
        while checkpointed_step(run_dir) < 2:
            assert first.poll() is None, (run_dir / "first.log").read_text()[-5000:]
            assert time.time() < deadline, "no checkpoint of step 2 within 15 minutes"
            time.sleep(0.2)
        time.sleep(1.0)  # into step 3
    finally:
        kill_group(first)
    killed_at = checkpointed_step(run_dir)
    lines_before = len(read_lines(run_dir / "metrics.jsonl"))
    resumed = subprocess.run(
        smoke_train(run_settings(run_dir), "--resume"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        start_new_session=True,
    )
    assert resumed.returncode == 0, resumed.stdout[-5000:] + resumed.stderr[-5000:]
    output = (run_dir / "first.log").read_text() + resumed.stdout + resumed.stderr
    return run_dir, killed_at, lines_before, output


def test_every_step_is_logged_once_and_a_resumed_run_redoes_no_checkpointed_step(killed_and_resumed):
    run_dir, killed_at, lines_before, _ = killed_and_resumed
    lines = read_lines(run_dir / "metrics.jsonl")
    train = [line["step"] for line in lines if line["kind"] == "train"]
    assert killed_at >= 2
    resumed_steps = [line["step"] for line in lines[lines_before:] if line["kind"] == "train"]
    assert resumed_steps and resumed_steps[0] == killed_at + 1  # continues after the checkpoint
    assert sorted(set(train)) == list(range(1, 7))  # no completed step lost
    assert all(step > killed_at for step in resumed_steps)  # nothing checkpointed is redone
    assert checkpointed_step(run_dir) == max(train)


def test_metrics_cover_reward_loss_and_time_by_phase(killed_and_resumed):
    run_dir, *_ = killed_and_resumed
    lines = read_lines(run_dir / "metrics.jsonl")
    train = [line["metrics"] for line in lines if line["kind"] == "train"]
    assert all("timing/step_total" in metrics and "rollout/reward_mean" in metrics for metrics in train)
    assert len(train) >= 6
    for metrics in train:
        missing = [key for key in TRAIN_METRICS if key not in metrics]
        assert not missing, missing
        assert 0.0 <= metrics["accuracy"] <= 1.0
        assert metrics["response_length"] == 1.0
    evals = [line["metrics"] for line in lines if line["kind"] == "eval"]
    assert evals and all("eval_default_pass1" in metrics for metrics in evals)
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents*"))


def test_a_reward_that_raises_is_counted_and_training_goes_on(killed_and_resumed):
    run_dir, _, _, output = killed_and_resumed
    train = [line["metrics"] for line in read_lines(run_dir / "metrics.jsonl") if line["kind"] == "train"]
    assert "reward failed on 1 sample(s): ValueError: flaky reward: cannot score red" in output
    # Samples labelled "red" raise in the flaky component; every step completed.
    assert any(metrics["reward_error"] > 0 for metrics in train)
    assert all(metrics["reward_error"] < 1 and metrics["flaky"] > 0 for metrics in train)  # others scored


def test_the_final_model_reloads_with_its_processor(killed_and_resumed):
    run_dir, *_ = killed_and_resumed
    from mm_eureka_plugin.checkpoints import load_processor

    processor = load_processor(run_dir)[0]
    assert hasattr(processor, "image_processor")
    assert (run_dir / "model.safetensors").exists()


def test_plot_draws_the_run(killed_and_resumed):
    run_dir, *_ = killed_and_resumed
    result = subprocess.run(
        [sys.executable, "-m", "mm_eureka_plugin.cli", "plot", str(run_dir)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).stat().st_size > 0
