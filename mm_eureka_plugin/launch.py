"""``mm-eureka train``: start Ray with the patch hook in every worker, then run OpenRLHF's PPO entry.

OpenRLHF's ``train_ppo_ray`` parses its flags under ``if __name__ == "__main__"``, so it runs here
as a main module (``runpy``) with the recipe's flags as ``sys.argv``. Ray is started first, with
``worker_process_setup_hook`` installing :func:`mm_eureka_plugin.patches.install` in each worker
(a patch made only in the driver is invisible to actors); OpenRLHF's ``train()`` then finds Ray
running and keeps our runtime environment.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any

from mm_eureka_plugin.config import CONFIG_ENV, OPENRLHF_MODULE, PluginConfig, Recipe, RecipeError

SETUP_HOOK = "mm_eureka_plugin.patches.worker_setup_hook"

# OpenRLHF's own defaults for the variables its train() would pass to ray.init.
OPENRLHF_RAY_ENV = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
}


def use_cpu(plugin: PluginConfig) -> bool:
    """Whether the run is on CPU: the recipe says ``device: cpu``, or ``auto`` finds no CUDA."""
    if plugin.device != "auto":
        return plugin.device == "cpu"
    import torch

    return not torch.cuda.is_available()


def runtime_env(plugin: PluginConfig, cpu: bool) -> dict[str, Any]:
    """Ray runtime environment: the setup hook and the variables every worker needs."""
    from mm_eureka_plugin.patches import DEVICE_ENV

    env_vars = {key: os.environ.get(key, default) for key, default in OPENRLHF_RAY_ENV.items()}
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


def check_flags(recipe: Recipe, cpu: bool) -> None:
    """Parse the recipe's OpenRLHF flags with OpenRLHF's own parser (patches installed first)."""
    from mm_eureka_plugin.patches import install
    from mm_eureka_plugin.patches.train_ppo_ray import FlagError, parse_flags

    install(cpu=cpu)
    try:
        parse_flags(recipe.openrlhf_argv())
    except FlagError as exc:
        raise RecipeError(
            f"{recipe.where}section 'openrlhf': OpenRLHF {OPENRLHF_MODULE} rejects the flags: {exc}"
        ) from exc


def train(recipe: Recipe, cpu: bool) -> None:
    """Run OpenRLHF's ``train_ppo_ray`` with the plugin active (``recipe`` already validated)."""
    init_ray(recipe.plugin, cpu)
    argv = sys.argv
    sys.argv = [OPENRLHF_MODULE, *recipe.openrlhf_argv()]
    try:
        runpy.run_module(OPENRLHF_MODULE, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = argv
