"""Loading a (vision-)language checkpoint and building its inputs, for the PRM scorer and the
candidate generator."""

from __future__ import annotations

from typing import Any


def load_model(path: str, dtype=None):
    """The checkpoint's model: image-text-to-text when its config has a vision part, else causal LM."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(path)
    model_cls = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
    return model_cls.from_pretrained(path, **({} if dtype is None else {"dtype": dtype}))


def model_inputs(processor, model, texts: list[str], images: list[Any], device) -> dict:
    """The processor's padded batch for ``texts`` and ``images`` on ``device``, with the
    ``mm_token_type_ids`` Qwen2.5-VL needs for its M-RoPE positions (0 text, 1 image, 2 video)."""
    import torch

    kwargs = {"images": images} if images else {}
    inputs = processor(text=texts, padding=True, return_tensors="pt", **kwargs)
    inputs = {key: value.to(device) for key, value in inputs.items() if key != "token_type_ids"}
    image_token_id = getattr(model.config, "image_token_id", None)
    if image_token_id is not None and "mm_token_type_ids" not in inputs:
        types = (inputs["input_ids"] == image_token_id).to(torch.int32)
        video_token_id = getattr(model.config, "video_token_id", None)
        if video_token_id is not None:
            types[inputs["input_ids"] == video_token_id] = 2
        inputs["mm_token_type_ids"] = types
    return inputs
