"""The `mm-eureka` command: plugins listing and recipe dry-runs through OpenRLHF's real parser."""

import json
import os
import subprocess
import sys
from pathlib import Path

from mm_eureka_plugin.cli import main
from mm_eureka_plugin.config import load_recipe

ROOT = Path(__file__).resolve().parents[1]
CPGD_RECIPE = ROOT / "recipes" / "cpgd-qwen2.5vl-7b.yaml"


def test_dry_run_prints_the_openrlhf_command_and_the_plugin_config(capsys):
    rc = main(["train", str(CPGD_RECIPE), "--dry-run", "--set", "openrlhf.actor.adam.lr=2e-6"])
    out = capsys.readouterr().out
    assert rc == 0, out
    command = next(line for line in out.splitlines() if line.startswith("python -m openrlhf.cli.train_ppo_ray"))
    assert "--actor.adam.lr 2e-06" in command
    assert "--algo.advantage.estimator dr_grpo" in command
    assert "--actor.freeze_visual_encoder" in command
    config = json.loads(out.split("# plugin config\n", 1)[1])
    assert config["policy_loss"] == {"name": "cpgd", "clip_eps": 0.2, "drift_coef": 0.01, "drift_clip": 2.0}
    assert config["advantage_weight"] == {"name": "clip_filter_like", "max_weight": 3.0}


def test_recipe_flags_parse_with_openrlhfs_own_parser():
    from mm_eureka_plugin.patches import install
    from mm_eureka_plugin.patches.train_ppo_ray import parse_flags

    install(cpu=True)
    args = vars(parse_flags(load_recipe(CPGD_RECIPE).openrlhf_argv()))
    assert args["rollout.n_samples_per_prompt"] == 8
    assert args["actor.adam.lr"] == 1e-6
    assert args["actor.policy_loss_type"] == "ppo"
    assert args["vllm.enable_sleep"] is True


def test_dry_run_refuses_a_flag_openrlhf_does_not_have(capsys):
    rc = main(["train", str(CPGD_RECIPE), "--dry-run", "--set", "openrlhf.actor.learning_rate=1e-6"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "section 'openrlhf'" in err and "--actor.learning_rate" in err


def test_console_script_lists_plugins():
    script = Path(sys.executable).parent / "mm-eureka"
    result = subprocess.run([str(script), "plugins"], capture_output=True, text=True, env=os.environ, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "policy_loss:" in result.stdout and "cpgd  [mm-eureka-plugin]" in result.stdout


def test_training_without_cuda_is_refused_not_left_waiting_for_gpus(capsys):
    rc = main(["train", str(CPGD_RECIPE), "--set", "plugin.device=cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "no CUDA device" in err and "--dry-run" in err
