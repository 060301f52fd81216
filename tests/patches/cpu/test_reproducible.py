"""A debugging loop repeats: two CPU runs of the smoke recipe with one seed train identically.

``plugin.seeded_sampling`` (on in the smoke recipe) gives every rollout sample its own seed and
trains on the kept groups in dispatch order; this checks that the first steps' rewards, losses and
gradient norms of two runs with ``train.seed`` 3 are equal, and that another seed changes them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
STEPS = 10
COMPARED = ("rollout/reward_mean", "accuracy", "policy_loss", "policy_drift", "actor_grad_norm", "filter/kept")


def run(smoke_train, run_dir: Path, seed: int) -> dict[int, dict]:
    sets = {
        "openrlhf.ckpt.output_dir": run_dir,
        "openrlhf.logger.tensorboard_dir": run_dir / "tensorboard",
        "openrlhf.train.num_episodes": 1,
        "openrlhf.train.seed": seed,
        "openrlhf.eval.steps": 100,
        "openrlhf.ckpt.save_steps": 100,
        "plugin.synthetic_task.train_size": STEPS * 8 * 3,  # room for the groups the filter drops
        "plugin.synthetic_task.eval_size": 4,
    }
    done = subprocess.run(smoke_train(sets), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = {line["step"]: line["metrics"] for line in lines if line["kind"] == "train"}
    assert len(train) >= STEPS
    return {step: {key: train[step][key] for key in COMPARED} for step in range(1, STEPS + 1)}


@pytest.fixture(scope="module")
def first(tmp_path_factory, smoke_train):
    return run(smoke_train, tmp_path_factory.mktemp("seed3-a"), 3)


def test_the_same_seed_gives_the_same_first_steps(first, tmp_path, smoke_train):
    again = run(smoke_train, tmp_path, 3)
    for step in first:
        assert again[step] == first[step], f"step {step}: {again[step]} != {first[step]}"


def test_another_seed_gives_other_steps(first, tmp_path, smoke_train):
    other = run(smoke_train, tmp_path, 4)
    assert [other[step]["rollout/reward_mean"] for step in other] != [
        first[step]["rollout/reward_mean"] for step in first
    ]
