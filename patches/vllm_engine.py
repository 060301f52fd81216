"""``openrlhf.trainer.ray.vllm_engine``: the rollout actor processes a prompt's images once per
group of samples (:func:`~mm_eureka_plugin.patches.vlm_utils.share_group_inputs`), and its vLLM
engine resizes images by the recipe's pixel budget (``plugin.data``'s ``min_pixels`` and
``max_pixels`` as vLLM's ``mm_processor_kwargs``), as the HF processor does in training.

``RolloutRayActor`` is already a Ray actor class when this runs, so it is replaced by a
subclass of the class it wraps, made an actor class again (Ray may copy methods into its actor
classes, so patching the method in place is not enough).
"""

from __future__ import annotations

from types import ModuleType

import ray

from mm_eureka_plugin.config import PluginConfig
from mm_eureka_plugin.patches.vlm_utils import share_group_inputs


def patch(module: ModuleType) -> None:
    upstream = module.RolloutRayActor.__ray_actor_class__

    class RolloutRayActor(upstream):
        async def __init__(self, *args, **kwargs):
            data = PluginConfig.from_env().data
            if data is not None:
                budget = {"min_pixels": data.min_pixels, "max_pixels": data.max_pixels}
                kwargs["mm_processor_kwargs"] = {**(kwargs.get("mm_processor_kwargs") or {}), **budget}
            await super().__init__(*args, **kwargs)

        generate_responses = share_group_inputs(upstream.generate_responses)

    module.RolloutRayActor = ray.remote(RolloutRayActor)
