"""OpenRLHF's own training loop on CPU: `mm-eureka train recipes/smoke-cpu.yaml`, shortened.

One run, killed in the middle of a step after two checkpointed steps, then resumed with
``--resume``. Its reward has a component that raises on every sample whose answer is "red"
(:mod:`flaky_reward`), so errors are counted while training goes on. Every sample is logged to
``samples.jsonl``.
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


SAMPLES_PER_STEP = 8 * 16
"""Every sample of a step: 8 prompts x 16 samples (recipes/smoke-cpu.yaml)."""


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
        "plugin.log_samples": SAMPLES_PER_STEP,
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
        assert metrics["filter/kept"] == 8 and metrics["filter/dropped_low"] == metrics["filter/dropped_high"] == 0
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents*"))


def test_eval_accuracy_is_logged_per_colour_and_over_all(killed_and_resumed):
    run_dir, *_ = killed_and_resumed
    evals = [line["metrics"] for line in read_lines(run_dir / "metrics.jsonl") if line["kind"] == "eval"]
    assert evals
    for metrics in evals:
        # 8 held-out images, 2 per colour: pass@1 of a colour is 0, 0.5 or 1
        per_colour = [metrics[f"eval_{colour}_pass1"] for colour in ("red", "green", "blue", "yellow")]
        assert all(value in (0.0, 0.5, 1.0) for value in per_colour)
        assert metrics["eval_all_pass1"] == pytest.approx(sum(per_colour) / 4)


def test_samples_log_every_sample_with_its_rewards_advantage_and_error(killed_and_resumed):
    run_dir, *_ = killed_and_resumed
    from mm_eureka_plugin.samples import FIELDS, read_samples

    train = {line["step"]: line["metrics"] for line in read_lines(run_dir / "metrics.jsonl") if line["kind"] == "train"}
    rows = read_samples(run_dir)
    by_step: dict[int, list] = {}
    for row in rows:
        assert list(row) == list(FIELDS)
        by_step.setdefault(row["step"], []).append(row)
    assert sorted(by_step) == sorted(train)
    for step, step_rows in by_step.items():
        assert len(step_rows) % SAMPLES_PER_STEP == 0  # a step killed after its samples is logged again
        last = step_rows[-SAMPLES_PER_STEP:]
        rewards = [row["reward"] for row in last]
        assert sum(rewards) / len(rewards) == pytest.approx(train[step]["rollout/reward_mean"], abs=1e-6)
        accuracy = [row["rewards"].get("accuracy", 0.0) for row in last]
        assert sum(accuracy) / len(accuracy) == pytest.approx(train[step]["accuracy"], abs=1e-6)
        assert sum(row["advantage"] for row in last) == pytest.approx(0.0, abs=1e-3)  # group-centred
        for row in last:
            assert row["prompt_id"].startswith("train-") and row["images"][0].endswith(".png")
            assert "What colour is the image?" in row["prompt"] and isinstance(row["response"], str)
    failed = [row for row in rows if row["reward_error"]]
    flaky = f"{FLAKY}:make_flaky_reward"
    # the failing component scores 0 and is named; the others still count
    assert failed and all(
        row["reward_error"] == f"{flaky}: ValueError: flaky reward: cannot score red" for row in failed
    )
    assert all(row["rewards"][flaky] == 0.0 and row["reward"] == row["rewards"]["accuracy"] for row in failed)
    assert all(row["rewards"]["flaky"] == 1.0 for row in rows if not row["reward_error"])


def test_samples_command_prints_a_step_and_the_worst(killed_and_resumed):
    run_dir, *_ = killed_and_resumed
    cli = [sys.executable, "-m", "mm_eureka_plugin.cli", "samples", str(run_dir)]
    last = subprocess.run([*cli, "--step", "2"], capture_output=True, text=True)
    assert last.returncode == 0, last.stderr
    assert last.stdout.count("--- step 2 |") >= SAMPLES_PER_STEP
    worst = subprocess.run([*cli, "--worst", "--limit", "3"], capture_output=True, text=True)
    assert worst.returncode == 0 and worst.stdout.count("--- step") == 3
    assert "reward 0.000" in worst.stdout.split("\n")[0]


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
