"""The `mm-eureka` command: plugins listing and recipe dry-runs through OpenRLHF's real parser."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mm_eureka_plugin.cli import main
from mm_eureka_plugin.config import load_recipe
from mm_eureka_plugin.patches.flags import argv, with_plugin_flags

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.yaml") if "\nopenrlhf:" in p.read_text())
"""The recipes of ``mm-eureka train`` (not the PRM training one)."""
CPGD_RECIPE = ROOT / "recipes" / "cpgd-qwen2.5vl-7b.yaml"


def test_dry_run_prints_the_openrlhf_command_and_the_plugin_config(capsys):
    rc = main(["train", str(CPGD_RECIPE), "--dry-run", "--set", "openrlhf.actor.adam.lr=2e-6"])
    out = capsys.readouterr().out
    assert rc == 0, out
    command = next(line for line in out.splitlines() if line.startswith("python -m openrlhf.cli.train_ppo_ray"))
    assert "--actor.adam.lr 2e-06" in command
    assert "--algo.advantage.estimator dr_grpo" in command
    assert "--actor.freeze_visual_encoder" in command
    config = json.loads(out.split("# plugin config\n", 1)[1].split("# placement\n")[0])
    assert config["policy_loss"] == {
        "name": "cpgd",
        "clip_eps": 0.2,
        "drift_coef": 0.01,
        "drift_clip": 2.0,
        "aggregation": "seq_mean_token_mean",
    }
    assert config["advantage_weight"] == {"name": "std"}


def test_the_prm_recipe_given_to_train_says_which_command_runs_it(capsys):
    assert main(["train", str(ROOT / "recipes" / "mm-prm-qwen2.5vl-7b.yaml"), "--dry-run"]) == 2
    assert "run it with mm-eureka prm train" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_dry_runs_and_its_flags_parse_with_openrlhfs_own_parser(recipe, capsys):
    from mm_eureka_plugin.patches import install
    from mm_eureka_plugin.patches.train_ppo_ray import parse_flags

    assert main(["train", str(recipe), "--dry-run"]) == 0, capsys.readouterr().err
    install(cpu=True)
    loaded = load_recipe(recipe)
    args = vars(parse_flags(argv(with_plugin_flags(loaded))))
    assert args["actor.policy_loss_type"] == "ppo"
    assert args["actor.freeze_visual_encoder"] is True
    added = getattr(loaded.plugin.build("rollout_executor"), "max_added_images", 0)
    assert args["data.max_images_per_prompt"] == 1 + added  # room for image_tools' crops in a vLLM request
    assert args["train.agent_func_path"].endswith("agent_executor.py")
    assert args["data.label_key"] == "mm_eureka_label"
    assert args["algo.dynamic_filtering_enable"] is (loaded.plugin.accuracy_filter is not None)


def test_no_two_recipes_share_a_checkpoint_directory():
    paths = [vars_of(load_recipe(recipe))["ckpt.path"] for recipe in RECIPES]
    assert len(set(paths)) == len(paths), paths
    assert all(Path(path).is_absolute() for path in paths)


def test_dry_run_prints_the_placement_and_refuses_one_the_cluster_cannot_hold(capsys):
    recipe = str(ROOT / "recipes" / "mm-eureka-qwen2.5vl-32b.yaml")
    assert main(["train", recipe, "--dry-run", "--cluster", "6x8"]) == 0
    assert "| used / cluster | 48 / 48 | 8 / 8 |" in capsys.readouterr().out
    assert main(["train", recipe, "--dry-run", "--cluster", "6x8", "--set", "openrlhf.algo.kl.init_coef=1e-3"]) == 2
    assert "ref needs 8 whole GPUs" in capsys.readouterr().err
    assert main(["train", recipe, "--cluster", "6x8"]) == 2
    assert "--cluster is for --dry-run" in capsys.readouterr().err


def test_gpu_recipes_run_on_gpus_whatever_the_driver_has_and_auto_is_refused_on_a_driver_joining_a_cluster(
    tmp_path, monkeypatch
):
    from mm_eureka_plugin.config import RecipeError
    from mm_eureka_plugin.launch import use_cpu

    for recipe in RECIPES:
        assert load_recipe(recipe).plugin.device == ("cpu" if recipe.name.endswith("-cpu.yaml") else "cuda")
    path = tmp_path / "r.yaml"
    path.write_text("plugin:\n  device: auto\n")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    with pytest.raises(RecipeError, match="no CUDA and joins the Ray cluster at RAY_ADDRESS=10.0.0.1:6379"):
        use_cpu(load_recipe(path))  # this machine has no CUDA
    monkeypatch.delenv("RAY_ADDRESS")
    assert use_cpu(load_recipe(path))


def test_paper_recipe_settings():
    mm_eureka = load_recipe(ROOT / "recipes" / "mm-eureka-qwen2.5vl-7b.yaml")
    assert mm_eureka.openrlhf["algo.advantage.estimator"] == "group_norm"
    assert mm_eureka.plugin.accuracy_filter == (0.1, 0.9)
    assert mm_eureka.plugin.reward.params["components"] == [
        {"name": "accuracy", "weight": 1.0},
        {"name": "format", "weight": 0.5},
    ]
    for colocated in (mm_eureka, load_recipe(CPGD_RECIPE)):  # each of vLLM and DeepSpeed sleeps while the other works
        flags = vars_of(colocated)
        assert flags["train.colocate_all"] and flags["vllm.enable_sleep"] and flags["ds.enable_sleep"]
    cpgd = load_recipe(CPGD_RECIPE)
    assert vars_of(cpgd)["rollout.n_samples_per_prompt"] == 8
    assert cpgd.plugin.accuracy_filter is None  # the CPGD authors' script filters nothing

    for recipe in (mm_eureka, cpgd, load_recipe(ROOT / "recipes" / "mm-eureka-qwen2.5vl-32b.yaml")):
        assert recipe.plugin.policy_loss.params["aggregation"] == "seq_mean_token_mean"  # the authors' reduction


AUTHORS_SCRIPTS = {  # flags of the MM-EUREKA scripts that the recipes match (README "Recipes against the papers")
    "mm-eureka-qwen2.5vl-7b.yaml": {  # qwen @ bccddd7 train_mm_eureka_qwen_7b_single_node.sh
        "actor.adam.lr": 1e-6,
        "train.num_episodes": 10,
        "rollout.batch_size": 128,
        "rollout.n_samples_per_prompt": 8,
        "train.batch_size": 128,
        "train.micro_batch_size": 2,
        "rollout.temperature": 1.0,
        "ds.zero_stage": 1,
        "algo.kl.init_coef": 0.0,
        "algo.advantage.estimator": "group_norm",
    },
    "cpgd-qwen2.5vl-7b.yaml": {  # fe4a536 train_cpgd_qwen_7b_single_node.sh
        "actor.adam.lr": 1e-6,
        "train.num_episodes": 5,
        "actor.adam.weight_decay": 0.01,
        "actor.lr_warmup_ratio": 0.0,
        "train.micro_batch_size": 1,
        "rollout.batch_size": 128,
        "rollout.n_samples_per_prompt": 8,
        "ds.zero_stage": 1,
        "algo.kl.init_coef": 0.0,
    },
}


@pytest.mark.parametrize("name", sorted(AUTHORS_SCRIPTS))
def test_recipes_keep_the_authors_script_values(name):
    recipe = load_recipe(ROOT / "recipes" / name)
    assert {key: recipe.openrlhf.get(key) for key in AUTHORS_SCRIPTS[name]} == AUTHORS_SCRIPTS[name]


def vars_of(recipe):
    from mm_eureka_plugin.patches import install
    from mm_eureka_plugin.patches.train_ppo_ray import parse_flags

    install(cpu=True)
    return vars(parse_flags(argv(with_plugin_flags(recipe))))


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


SMOKE_RECIPE = ROOT / "recipes" / "smoke-cpu.yaml"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["vllm.num_engines=0"], "must be at least 1: on CPU, rollouts come from rollout actors too"),
        (["vllm.tensor_parallel_size=2"], "must be 1 on CPU"),
        (["vllm.sync_with_ray=true"], "is not supported on CPU"),
        (
            ["vllm.sync_backend=nccl", "train.colocate_all=true"],
            "nccl with train.colocate_all syncs weights by CUDA IPC",
        ),
    ],
)
def test_a_cpu_run_refuses_what_the_cpu_rollout_actor_cannot_do(flags, message, capsys):
    sets = [part for flag in flags for part in ("--set", f"openrlhf.{flag}")]
    rc = main(["train", str(SMOKE_RECIPE), "--dry-run", *sets])  # the recipe says device: cpu
    err = capsys.readouterr().err
    assert rc == 2
    assert f"key 'openrlhf.{flags[0].split('=')[0]}' {message}" in err


def test_resume_sets_openrlhfs_checkpoint_loading(capsys):
    assert main(["train", str(SMOKE_RECIPE), "--dry-run", "--resume"]) == 0
    assert "--ckpt.load_enable" in capsys.readouterr().out


def test_reward_score_prints_one_json_object_per_row(tmp_path, capsys):
    rows = [
        {"id": "a", "response": "<think>half</think><answer>$\\frac{1}{2}$</answer>", "answer": "0.5"},
        {"id": "b", "response": "<answer>3</answer>", "answer": "4"},
    ]
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["reward", "score", str(path), "--reward", "accuracy,format"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out == [
        {"id": "a", "reward": 2.0, "accuracy": 1.0, "format": 1.0},
        {"id": "b", "reward": 0.0, "accuracy": 0.0, "format": 0.0},
    ]
    path.write_text('{"response": "x"}\n{"response": "<answer>4</answer>", "answer": "4"}\n')
    assert main(["reward", "score", str(path), "--reward", "accuracy"]) == 1
    printed = capsys.readouterr()
    assert f"{path}, row 1: missing 'answer'" in printed.err and "1 row(s) could not be scored" in printed.err
    assert json.loads(printed.out.splitlines()[1]) == {"reward": 1.0, "accuracy": 1.0}


def help_text(argv, capsys):
    """The ``--help`` output of a command, whitespace collapsed."""
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_eval_and_prm_annotate_take_the_same_sampling_flags(capsys):
    from mm_eureka_plugin.cli import build_parser, sampling_config

    helps = {"eval": help_text(["eval"], capsys), "annotate": help_text(["prm", "annotate"], capsys)}
    scopes = {"eval": "with --policy", "annotate": "rollout sampling"}
    for command, text in helps.items():
        scope = scopes[command]
        assert (
            f"--backend {{auto,vllm,transformers}} {scope}: vllm, transformers, or auto: vllm where it is installed "
            "and CUDA is available (default)"
        ) in text
        assert f"--temperature TEMPERATURE {scope}; 0 is greedy (default: 1.0)" in text
        assert f"--top-p TOP_P {scope} (default: 1.0)" in text
        assert f"--max-new-tokens MAX_NEW_TOKENS {scope} (default: 1024)" in text
        assert f"--seed SEED {scope}; each problem is seeded from (seed, its index) (default: 0)" in text
    assert (
        "--batch-size BATCH_SIZE solutions per PRM forward pass, and sequences per generate call with --policy "
        "(default: 8)"
    ) in helps["eval"]
    assert "--batch-size BATCH_SIZE sequences per transformers call (default: 16)" in helps["annotate"]

    parser = build_parser()
    argv = ["prm", "annotate", "d.jsonl", "--policy", "p", "--out", "t.jsonl", "--top-p", "0.9"]
    sampling = sampling_config(parser.parse_args([*argv, "--backend", "transformers"]))
    assert (sampling.temperature, sampling.top_p, sampling.max_new_tokens, sampling.seed) == (1.0, 0.9, 1024, 0)
    assert (sampling.backend, sampling.batch_size) == ("transformers", 16)


def test_eval_takes_a_judge_as_prm_annotate_does(capsys):
    from mm_eureka_plugin.cli import build_parser

    text = help_text(["eval"], capsys)
    assert "--judge JUDGE judge (name or reference) deciding instead of the reward" in text
    assert "--judge-arg KEY=VALUE judge parameter, repeatable" in help_text(["prm", "annotate"], capsys)
    assert "--judge-arg KEY=VALUE judge parameter, repeatable" in text
    argv = ["eval", "b.jsonl", "--candidates", "c.jsonl", "--out", "o", "--judge", "openai_compatible"]
    args = build_parser().parse_args([*argv, "--judge-arg", "url=https://h/v1", "--judge-arg", "model=gpt-4o"])
    assert (args.judge, args.judge_arg, args.reward) == (
        "openai_compatible",
        ["url=https://h/v1", "model=gpt-4o"],
        "accuracy",
    )


def test_dry_run_refuses_a_data_file_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "train.jsonl"
    assert main(["train", str(CPGD_RECIPE), "--dry-run", "--set", f"plugin.data.path={missing}"]) == 2
    assert f"key 'plugin.data.path': no such file: {missing}" in capsys.readouterr().err
    assert main(["train", str(CPGD_RECIPE), "--dry-run", "--set", f"plugin.data.path={tmp_path}"]) == 2
    assert "a directory, not a data file, and no data files (.jsonl, .json, .parquet) in it" in capsys.readouterr().err


def test_dry_run_takes_a_hub_dataset_name_and_a_hub_layout_folder(tmp_path, capsys):
    def data_path(value):
        assert main(["train", str(CPGD_RECIPE), "--dry-run", "--set", f"plugin.data.path={value}"]) == 0
        return json.loads(capsys.readouterr().out.split("# plugin config\n", 1)[1].split("# placement\n")[0])

    assert data_path("FanqingM/MMK12")["data"]["path"] == "FanqingM/MMK12"  # not read in a dry run
    (tmp_path / "MMK12" / "data").mkdir(parents=True)
    (tmp_path / "MMK12" / "data" / "test-00000-of-00001.parquet").write_bytes(b"")
    assert data_path(f"{tmp_path / 'MMK12'}:test")["data"]["path"] == f"{tmp_path / 'MMK12'}:test"


def test_third_party_import_noise_stays_off_the_first_screen():
    # a fresh process: bitsandbytes warns once, when OpenRLHF first imports it
    printed = subprocess.run(
        [sys.executable, "-m", "mm_eureka_plugin.cli", "train", str(CPGD_RECIPE), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("# OpenRLHF command")
    assert "gemm_4bit" not in printed.stderr and "kernels" not in printed.stderr
