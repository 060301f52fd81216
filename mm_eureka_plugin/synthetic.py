"""A synthetic visual task that OpenRLHF's PPO loop on CPU learns in minutes.

Each prompt shows one 56x56 image of a solid colour (with jitter) and asks "What colour is the
image? Answer with one word."; the label is the colour word, one of :data:`COLOURS`. The policy
is a tiny random-weight Qwen2.5-VL (the real architecture, small widths) with a word-level
vocabulary of 48 tokens: the Qwen special tokens, the words of the prompts and a few distractors.
The vocabulary is small so that a random policy samples the right word often enough to be
rewarded; with Qwen's 152k tokens it practically never does. ``blank=True`` builds the control
task, where every image is the same grey and the answer cannot be read from it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mm_eureka_plugin import synthetic_zoom
from mm_eureka_plugin.tiny_vlm import CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS

logger = logging.getLogger(__name__)

TASK_KINDS = ("colour", "zoom")
"""``kind`` of :func:`build_colour_task`: a solid-colour image, or its zoom variant."""

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
"""The answer words and their RGB colours."""
QUESTION = "What colour is the image? Answer with one word."
"""The question of every prompt."""
IMAGE_SIZE = 56
"""Image width and height: a fixed point of Qwen2.5-VL's pixel budget with ``min_pixels=56*56``."""
MIN_PIXELS = IMAGE_SIZE * IMAGE_SIZE
MAX_PIXELS = 64 * 28 * 28
BLANK_RGB = (128, 128, 128)
"""The colour of every image of the blank control task."""
UNKNOWN_TOKEN = "<unk>"
WORDS = (
    *("system", "user", "assistant", "You", "are", "a", "helpful", "."),  # the chat template
    *("What", "colour", "is", "the", "image", "?", "Answer", "with", "one", "word"),  # the question
    *COLOURS,
    *("black", "white", "grey", "orange", "purple", "pink", "brown", "cyan", "yes", "no", "none"),
)
"""The vocabulary's words (after the special tokens and the unknown token); distractors last."""
COLOUR_JITTER = 20
"""Largest per-image shift of each channel of a colour."""
PIXEL_NOISE = 10
"""Largest per-pixel shift of each channel."""


@dataclass(frozen=True)
class ColourTask:
    """A built task: the model directory (model, tokenizer, processor), the raw training rows
    (``openrlhf`` format) and the evaluation rows already converted for OpenRLHF."""

    model: Path
    train: Path
    eval: Path


def build_colour_task(
    out_dir: str | Path,
    *,
    seed: int = 0,
    train_size: int = 256,
    eval_size: int = 32,
    blank: bool = False,
    kind: str = "colour",
) -> ColourTask:
    """Build the colour task into ``out_dir`` (see the module docstring), or return it if built;
    ``kind="zoom"`` builds its zoom variant (:mod:`mm_eureka_plugin.synthetic_zoom`).

    The task is built in a temporary sibling directory and renamed into place, with ``task.json``
    (the parameters) written last. Raises :class:`ValueError` if ``out_dir`` holds something else.
    """
    if kind not in TASK_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TASK_KINDS)}, got {kind!r}.")
    out_dir = Path(out_dir).resolve()
    params = {"seed": seed, "train_size": train_size, "eval_size": eval_size, "blank": blank}
    if kind == "zoom":  # a colour task's marker stays as it was before kinds existed
        params.update(kind=kind, design=synthetic_zoom.DESIGN)
    task = ColourTask(out_dir / "model", out_dir / "train.jsonl", out_dir / "eval.jsonl")
    if _is_built(out_dir, params):
        return task
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        zoom = kind == "zoom"
        _save_model(staging / "model", seed, tools=zoom)
        if zoom:
            well_formed = synthetic_zoom.teach_tool_format(staging / "model", seed, QUESTION)
            logger.info(
                "zoom task: the cold-started policy's first responses are %.0f%% well formed", 100 * well_formed
            )
        (staging / "images").mkdir()
        _write_rows(staging / "train.jsonl", staging / "images", "train", train_size, seed, blank, zoom)
        _write_eval(staging, out_dir, eval_size, seed, blank, zoom)
        (staging / "task.json").write_text(json.dumps(params) + "\n", encoding="utf-8")
        try:
            os.rename(staging, out_dir)  # replaces an empty directory, fails on a non-empty one
        except OSError:
            if not _is_built(out_dir, params):  # a concurrent build of the same task may have won
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return task


def _is_built(out_dir: Path, params: dict) -> bool:
    """Whether ``out_dir`` holds the task built with ``params``; False if it is missing or empty."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return False
    marker = out_dir / "task.json"
    found = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None
    if found != params:
        what = f"a colour task built with {found}" if found else "no complete colour task"
        raise ValueError(f"{out_dir} holds {what}, not one with {params}. Delete it or pick another directory.")
    return True


def _tokenizer(tools: bool = False):
    """The word-level tokenizer: Qwen's special tokens (ids 0-13), the unknown token, then :data:`WORDS`
    (and with ``tools``, the zoom task's colours and crop-call words and tokens)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    extra = (
        [
            *synthetic_zoom.TOOL_TOKENS,
            *synthetic_zoom.TOOL_WORDS,
            *(w for w in synthetic_zoom.COLOURS if w not in WORDS),
        ]
        if tools
        else []
    )
    tokens = [*QWEN_SPECIAL_TOKENS, UNKNOWN_TOKEN, *WORDS, *extra]
    backend = Tokenizer(models.WordLevel({token: i for i, token in enumerate(tokens)}, unk_token=UNKNOWN_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.add_special_tokens([*QWEN_SPECIAL_TOKENS, UNKNOWN_TOKEN])
    if tools:  # matched before the punctuation split, kept when decoding
        backend.add_tokens([AddedToken(token, special=False) for token in synthetic_zoom.TOOL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=UNKNOWN_TOKEN,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=list(QWEN_SPECIAL_TOKENS),
        chat_template=CHAT_TEMPLATE,
    )


def _save_model(path: Path, seed: int, tools: bool = False) -> None:
    """Save the random-weight model, its tokenizer (:func:`_tokenizer`) and its processor to ``path``."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from mm_eureka_plugin.tiny_vlm import Qwen2_5_VLImageProcessor, register_processor, tiny_config

    register_processor()
    tokenizer = _tokenizer(tools)
    ids = tokenizer.convert_tokens_to_ids
    config = tiny_config()  # the real vocabulary size, replaced below with the ids it must contain
    config.text_config.vocab_size = -(-len(tokenizer) // 16) * 16
    config.image_token_id = ids("<|image_pad|>")
    config.video_token_id = ids("<|video_pad|>")
    config.vision_start_token_id = ids("<|vision_start|>")
    config.vision_end_token_id = ids("<|vision_end|>")
    config.text_config.bos_token_id = ids("<|endoftext|>")
    config.text_config.eos_token_id = ids("<|im_end|>")
    config.text_config.pad_token_id = ids("<|endoftext|>")
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.bos_token_id = ids("<|endoftext|>")
    model.generation_config.eos_token_id = ids("<|im_end|>")
    model.generation_config.pad_token_id = ids("<|endoftext|>")
    budget = (synthetic_zoom.PIXELS, synthetic_zoom.PIXELS) if tools else (MIN_PIXELS, MAX_PIXELS)
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": budget[0], "longest_edge": budget[1]})
    processor = Qwen2_5_VLImageProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)


def _write_rows(path: Path, image_dir: Path, split: str, size: int, seed: int, blank: bool, zoom: bool) -> None:
    """Write ``size`` raw ``openrlhf`` rows to ``path`` with their images in ``image_dir``:
    balanced colours in a random order, each split drawn from its own random stream."""
    import numpy as np
    from PIL import Image

    if zoom:
        synthetic_zoom.write_rows(path, image_dir, split, size, seed, blank, QUESTION)
        return

    rng = np.random.default_rng([seed, ("train", "eval").index(split)])
    names = list(COLOURS)
    colours = [names[i % len(names)] for i in range(size)]
    rng.shuffle(colours)
    shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    with path.open("w", encoding="utf-8") as out:
        for i, colour in enumerate(colours):
            if blank:
                pixels = np.full(shape, BLANK_RGB)
            else:
                shift = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3)
                pixels = np.array(COLOURS[colour]) + shift + rng.integers(-PIXEL_NOISE, PIXEL_NOISE + 1, shape)
            image = image_dir / f"{split}-{i:05d}.png"
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(image)
            row = {
                "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}],
                "images": [str(image.relative_to(path.parent))],
                "label": colour,
                "metadata": {"id": f"{split}-{i:05d}", "colour": colour},
            }
            out.write(json.dumps(row) + "\n")


def _write_eval(staging: Path, out_dir: Path, size: int, seed: int, blank: bool, zoom: bool) -> None:
    """Write ``staging/eval.jsonl``: raw eval rows converted for OpenRLHF, with image paths that
    point into ``out_dir``, where ``staging`` will be renamed, and the colour as ``datasource``
    (OpenRLHF's evaluation reports pass@1 per source: one curve per colour)."""
    from mm_eureka_plugin.data import convert_file
    from mm_eureka_plugin.data.convert import SOURCE_IMAGES
    from mm_eureka_plugin.data.records import LABEL_COLUMN, decode_label, encode_label

    with tempfile.TemporaryDirectory(prefix="colour-eval-") as raw_dir:
        raw = Path(raw_dir) / "eval.jsonl"
        _write_rows(raw, Path(raw_dir), "eval", size, seed, blank, zoom)
        budget = (synthetic_zoom.PIXELS, synthetic_zoom.PIXELS) if zoom else (MIN_PIXELS, MAX_PIXELS)
        convert_file(
            raw, "openrlhf", staging / "eval.jsonl", min_pixels=budget[0], max_pixels=budget[1], keep_source_images=zoom
        )
    path = staging / "eval.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row["images"] = [str(out_dir / Path(image).relative_to(staging)) for image in row["images"]]
        if zoom:  # the source images' paths, in the metadata and in the label the rollout reads
            _, metadata = decode_label(row[LABEL_COLUMN])
            sources = [str(out_dir / Path(image).relative_to(staging)) for image in metadata[SOURCE_IMAGES]]
            metadata[SOURCE_IMAGES] = sources
            row["metadata"] = json.dumps(metadata)
            row[LABEL_COLUMN] = encode_label(row["label"], metadata)
        row["datasource"] = decode_label(row[LABEL_COLUMN])[1]["colour"]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
