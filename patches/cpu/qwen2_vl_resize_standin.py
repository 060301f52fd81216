"""CPU stand-in for ``transformers.models.qwen2_vl.image_processing_qwen2_vl`` without torchvision.

That module is the torchvision backend of Qwen2-VL's image processor; vLLM's Qwen2-VL and
Qwen2.5-VL model files import only its ``smart_resize`` from it, the same function as in its
PIL twin, which needs no torchvision.
"""

from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

__all__ = ["smart_resize"]
