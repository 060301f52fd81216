"""``vllm.model_executor.models.qwen2_5_vl`` on CPU without torchvision: the image-only processor.

vLLM loads Qwen2.5-VL's HF processor as ``Qwen2_5_VLProcessor.from_pretrained``, which also builds
the video processor, and transformers' video processors need torchvision. The model file's name
``Qwen2_5_VLProcessor`` becomes :class:`~mm_eureka_plugin.tiny_vlm.Qwen2_5_VLImageProcessor` (a
subclass without video), so images and text work; video is refused by the engine's
``limit_mm_per_prompt`` on CPU.
"""

from __future__ import annotations

from types import ModuleType


def patch(module: ModuleType) -> None:
    from mm_eureka_plugin.tiny_vlm import Qwen2_5_VLImageProcessor

    module.Qwen2_5_VLProcessor = Qwen2_5_VLImageProcessor
