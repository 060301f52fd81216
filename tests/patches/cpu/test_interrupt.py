"""Preemption and Ctrl-C: a real CPU training run sent SIGTERM (then resumed) and SIGINT ends cleanly.

The driver alone gets the signal, as Kubernetes sends it to a pod's main process. It must shut Ray
down, say after which step it stopped and how to resume, and exit 143 (SIGTERM) or 130 (SIGINT),
without a traceback; ``--resume`` then continues after the last checkpoint, so every step is in
``metrics.jsonl`` and ``samples.jsonl`` once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SAMPLES_PER_STEP = 4
STEPS = 12
"""Steps of a whole run: ~0.5 s each, enough to signal one in the middle."""


def settings(run_dir: Path) -> dict:
    return {
        "openrlhf.ckpt.output_dir": run_dir,
        "openrlhf.logger.tensorboard_dir": run_dir / "tensorboard",
        "openrlhf.train.num_episodes": 1,
        "openrlhf.eval.steps": 100,
        "plugin.synthetic_task.train_size": STEPS * 8,  # 8 prompts a step
        "plugin.synthetic_task.eval_size": 4,
        "plugin.accuracy_filter": "[0.0, 1.0]",  # every group kept: a known number of steps
        "plugin.log_samples": SAMPLES_PER_STEP,
    }


def checkpointed_step(run_dir: Path) -> int:
    latest = run_dir / "checkpoints" / "_actor" / "latest"
    return int(latest.read_text().rpartition("global_step")[2]) if latest.exists() else 0


def interrupt_after(smoke_train, run_dir: Path, step: int, signum: int) -> tuple[subprocess.CompletedProcess, float]:
    """Start a run, send ``signum`` to its driver once step ``step`` is checkpointed; returns the
    finished process and the seconds from the signal to its exit."""
    log = run_dir / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen(smoke_train(settings(run_dir)), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 900
        while checkpointed_step(run_dir) < step:
            assert run.poll() is None, log.read_text()[-5000:]
            assert time.time() < deadline, f"no checkpoint of step {step} within 15 minutes"
            time.sleep(0.2)
        sent = time.time()
        run.send_signal(signum)
        code = run.wait(timeout=300)
        seconds = time.time() - sent
    return subprocess.CompletedProcess(run.args, code, log.read_text(), ""), seconds


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def terminated(tmp_path_factory, smoke_train):
    run_dir = tmp_path_factory.mktemp("sigterm")
    stopped, seconds = interrupt_after(smoke_train, run_dir, 2, signal.SIGTERM)
    at = checkpointed_step(run_dir)
    resumed = subprocess.run(
        smoke_train(settings(run_dir), "--resume"), cwd=REPO, capture_output=True, text=True, timeout=900
    )
    return run_dir, stopped, seconds, at, resumed


def test_sigterm_ends_the_run_with_143_and_says_how_to_resume(terminated):
    _, stopped, seconds, at, _ = terminated
    assert stopped.returncode == 143, stopped.stdout[-5000:]
    last = stopped.stdout.strip().splitlines()[-1]
    assert last.startswith(f"mm-eureka: interrupted by SIGTERM after step {at} (its checkpoint is the latest); ")
    assert last.endswith("--resume") and "rerun with --resume: mm-eureka train" in last
    assert "Traceback" not in stopped.stdout and "KeyboardInterrupt" not in stopped.stdout
    assert seconds < 60, f"{seconds:.1f} s from SIGTERM to exit"
    print(f"SIGTERM to exit: {seconds:.1f} s")


def test_the_resumed_run_continues_after_the_checkpoint_and_logs_each_step_once(terminated):
    run_dir, _, _, at, resumed = terminated
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    train = [line["step"] for line in lines(run_dir / "metrics.jsonl") if line["kind"] == "train"]
    assert 2 <= at < STEPS and train == list(range(1, STEPS + 1))  # nothing lost, nothing twice
    samples = [row["step"] for row in lines(run_dir / "samples.jsonl")]
    assert samples == [step for step in range(1, STEPS + 1) for _ in range(SAMPLES_PER_STEP)]


def test_sigint_ends_the_run_with_130(tmp_path, smoke_train):
    stopped, _ = interrupt_after(smoke_train, tmp_path, 1, signal.SIGINT)
    assert stopped.returncode == 130, stopped.stdout[-5000:]
    assert "mm-eureka: interrupted by SIGINT after step" in stopped.stdout
    assert "Traceback" not in stopped.stdout and "KeyboardInterrupt" not in stopped.stdout


def test_a_killed_actor_ends_the_run_with_a_summary_not_a_traceback(tmp_path, smoke_train):
    """The OOM killer's work, done by hand: SIGKILL the rollout actor's process after step 1."""
    import psutil

    log = tmp_path / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen(smoke_train(settings(tmp_path)), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 900
        while checkpointed_step(tmp_path) < 1:
            assert run.poll() is None and time.time() < deadline, log.read_text()[-5000:]
            time.sleep(0.2)
        victims = [  # this run's own (Ray's workers descend from the driver, which started Ray)
            p
            for p in psutil.Process(run.pid).children(recursive=True)
            if "ray::CPURolloutActor" in " ".join(p.cmdline())
        ]
        assert victims, "no rollout actor process found"
        for victim in victims:
            victim.kill()
        code = run.wait(timeout=300)
    printed = log.read_text()
    assert code == 2, printed[-5000:]
    last = printed.strip().splitlines()[-1]
    assert last.startswith("mm-eureka: error: a Ray actor of the run died: CPURolloutActor"), last
    assert "OOM killer" in last and "The last complete checkpoint is step" in last and last.endswith("--resume")
