"""``openrlhf.utils.utils`` on CPU: the tiny model's image-only processor can be loaded by name.

The tiny Qwen2.5-VL used on CPU saves :class:`mm_eureka_plugin.tiny_vlm.Qwen2_5_VLImageProcessor`
(the stock processor needs torchvision for video). ``get_tokenizer`` loads it with
``AutoProcessor``, which finds the class as an attribute of ``transformers``: it is registered
in every process that imports OpenRLHF's tokenizer helper.
"""

from __future__ import annotations

from types import ModuleType


def patch(module: ModuleType) -> None:
    from mm_eureka_plugin.tiny_vlm import register_processor

    register_processor()
