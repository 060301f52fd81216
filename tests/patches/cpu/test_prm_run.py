"""The PRM as a dense RL reward in OpenRLHF's own loop on CPU: `mm-eureka train` with `plugin.prm`.

The launcher starts the PRM server (a Ray actor holding a PRM made from the tiny VLM); two CPU
rollout actors score every sample with it (weighted: accuracy + 0.5 * prm, dense), and the step
credit reaches OpenRLHF's returns through the experience maker patch.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_a_run_scores_every_sample_with_the_shared_prm_and_credits_its_steps(prm_dir, tmp_path, smoke_train):
    reward = (
        "{name: weighted, components: [{name: accuracy, weight: 1.0}, "
        "{name: prm, weight: 0.5, mode: dense, timeout_s: 120}]}"
    )
    sets = {
        "openrlhf.ckpt.output_dir": tmp_path,
        "openrlhf.ckpt.path": tmp_path / "checkpoints",
        "openrlhf.ckpt.save_steps": 100,
        "openrlhf.logger.tensorboard_dir": tmp_path / "tensorboard",
        "openrlhf.train.num_episodes": 1,
        "openrlhf.eval.steps": 100,
        "openrlhf.vllm.num_engines": 2,
        "plugin.synthetic_task.train_size": 16,
        "plugin.synthetic_task.eval_size": 4,
        "plugin.accuracy_filter": "null",
        "plugin.advantage_weight": "null",  # weights are for group-centred rewards, not step credit
        "openrlhf.algo.advantage.estimator": "rloo",
        "plugin.reward": reward,
        "plugin.prm": f"{{path: {prm_dir}, max_wait_ms: 50}}",
    }
    run = subprocess.run(
        smoke_train(sets), cwd=REPO, capture_output=True, text=True, timeout=900, start_new_session=True
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "starting the PRM server" in output
    stats = re.search(r"PRM server: requests (\d+), solutions (\d+), batches (\d+), failed_batches 0", output)
    assert stats, output[-6000:]
    requests, solutions, batches = map(int, stats.groups())
    # one request per sample with a step (a response decoded to nothing has none), 128 per step
    assert 128 < requests == solutions <= 2 * 128 + 2  # + the two rollout executors' start-up probes
    assert batches < requests / 2  # single-sample requests from two rollout actors share forwards

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [line["metrics"] for line in lines if line["kind"] == "train"]
    assert len(train) == 2  # 16 prompts, 8 per step
    for metrics in train:
        assert metrics["prm_failed"] == 0.0 and metrics["reward_error"] == 0.0
        assert 0.0 < metrics["prm"] < 1.0
        # one step per one-word answer, credited 0.5 * its score on top of the accuracy
        assert metrics["step_reward_sum"] == pytest.approx(0.5 * metrics["prm"], abs=1e-3)
