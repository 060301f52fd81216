"""A (vision-)language checkpoint: its model, its processor, its batched inputs, its stop tokens and
its vision special tokens; for the PRM scorer and trainer, the candidate generator, the rollout
executor and the CPU rollout actor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

VISION_TOKEN = re.compile(r"vision|image|video")


def load_model(path: str, dtype=None):
    """The checkpoint's model: image-text-to-text when its config has a vision part, else causal LM."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(path)
    model_cls = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
    return model_cls.from_pretrained(path, **({} if dtype is None else {"dtype": dtype}))


def load_processor(path: str | Path, **kwargs: Any) -> tuple[Any, Any]:
    """The checkpoint's processor (the tiny models' image-only one too) and its tokenizer (the
    processor itself for a text model); ``kwargs`` go to ``AutoProcessor.from_pretrained``."""
    from transformers import AutoProcessor

    from mm_eureka_plugin.tiny_vlm import register_processor

    register_processor()
    processor = AutoProcessor.from_pretrained(str(path), **kwargs)
    return processor, getattr(processor, "tokenizer", processor)


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


def stop_token_ids(generation_config, tokenizer) -> list[int]:
    """The ids generation stops at: the generation config's eos ids (a model's ``generation_config``,
    None for none), and the tokenizer's eos."""
    eos = getattr(generation_config, "eos_token_id", None)
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def vision_special_tokens(processor) -> list[str]:
    """The special tokens of a VLM's processor that stand for image or video content."""
    tokenizer = getattr(processor, "tokenizer", processor)
    tokens = {getattr(processor, name, None) for name in ("image_token", "video_token")}
    tokens.update(t for t in tokenizer.all_special_tokens if VISION_TOKEN.search(t))
    tokens.update(t for t in tokenizer.get_added_vocab() if t.startswith("<|") and VISION_TOKEN.search(t))
    return sorted(t for t in tokens if t)


def vision_token_ids(processor) -> list[int]:
    """The ids of a VLM processor's image and video special tokens, which a response must never contain."""
    tokenizer = getattr(processor, "tokenizer", processor)
    ids = {tokenizer.convert_tokens_to_ids(token) for token in vision_special_tokens(processor)}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


def vision_logit_bias(processor) -> dict[int, float]:
    """vLLM ``logit_bias`` that bans the vision special tokens: -inf on each (one vectorised add per
    step, where ``bad_words`` costs a Python loop per request and word)."""
    return dict.fromkeys(vision_token_ids(processor), float("-inf"))
