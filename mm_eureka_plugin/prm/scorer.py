"""MM-PRM's process reward model: step scores from one forward pass per solution.

A PRM is a (vision-)language model whose tokenizer has the special token :data:`PRM_TOKEN`. A
solution is scored by placing the tag after every step (:func:`tagged_solution`) behind the
prompt (images included) and reading, at each tag position, the logits of the tokens
:data:`POSITIVE` and :data:`NEGATIVE`: the step score is ``softmax(yes, no)[yes]`` (MM-PRM,
arXiv 2505.13427; REFERENCE.md section 3). With causal attention the score at tag k sees only
steps 1..k, so one forward pass gives every step's score, exactly as k forwards over the prefixes
would. :func:`make_prm_checkpoint` turns a base checkpoint into one that has the tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mm_eureka_plugin.checkpoints import load_model, load_processor, model_inputs
from mm_eureka_plugin.errors import UserError

PRM_TOKEN = "<prm>"
"""The step tag; its position's logits give the step's score."""
POSITIVE = "Yes"
NEGATIVE = "No"
STEP_SEPARATOR = "\n"
"""What follows each tag in a tagged solution."""


class PRMCheckpointError(UserError):
    """A checkpoint cannot serve as a PRM (no tag token, or label words that are not one token)."""


@dataclass(frozen=True)
class PRMInput:
    """One solution to score: the prompt, its steps, and the prompt's images.

    ``prompt`` is a question (put after the images in a user turn and chat-templated), chat
    messages (templated), or, with ``templated=True``, the full prompt text as the policy saw it
    (chat template applied, one image placeholder per image).
    """

    prompt: str | list[dict[str, Any]]
    steps: Sequence[str]
    images: Sequence[Any] = field(default_factory=tuple)
    templated: bool = False


def tagged_solution(steps: Sequence[str]) -> str:
    """The solution text a PRM reads: each step (tags inside it removed) followed by the tag."""
    return "".join(f"{step.replace(PRM_TOKEN, '').strip()}{PRM_TOKEN}{STEP_SEPARATOR}" for step in steps)


def make_prm_checkpoint(base: str | Path, out: str | Path) -> Path:
    """Save ``base`` (model and processor or tokenizer) to ``out`` with :data:`PRM_TOKEN` added as a
    special token (the embeddings grow if the vocabulary has no free row); returns ``out``."""
    model = load_model(str(base))
    processor, tokenizer = load_processor(base)
    tokenizer.add_tokens([PRM_TOKEN], special_tokens=True)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return Path(out)


def prm_token_ids(tokenizer, path) -> tuple[int, int, int]:
    """The ids of :data:`PRM_TOKEN`, :data:`POSITIVE` and :data:`NEGATIVE`; :class:`PRMCheckpointError`
    naming the checkpoint ``path`` when one is not a single token."""
    ids = []
    for text in (PRM_TOKEN, POSITIVE, NEGATIVE):
        found = tokenizer.encode(text, add_special_tokens=False)
        if len(found) != 1:
            hint = " Make one with mm_eureka_plugin.prm.make_prm_checkpoint." if text == PRM_TOKEN else ""
            raise PRMCheckpointError(f"{path}: {text!r} is {len(found)} tokens, not one.{hint}")
        ids.append(found[0])
    return ids[0], ids[1], ids[2]


def prm_text(processor, item: PRMInput) -> str:
    """The full text a PRM reads for ``item`` (scoring and training alike): the chat-templated
    prompt (or the given templated text), then the steps, each followed by the tag."""
    messages = item.prompt
    if item.templated:
        return f"{messages}{tagged_solution(item.steps)}"
    if isinstance(messages, str):
        content = [{"type": "image"} for _ in item.images] + [{"type": "text", "text": messages}]
        messages = [{"role": "user", "content": content}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return prompt + tagged_solution(item.steps)


def tag_logits(model, inputs: dict, tag_id: int, label_ids: list[int]):
    """The logits of the label tokens at every tag of the batch, ``[tags, 2]`` in row-major order;
    the vocabulary projection runs only at the columns holding a tag (``logits_to_keep``)."""
    tags = inputs["input_ids"] == tag_id
    columns = tags.any(0).nonzero().squeeze(-1)
    logits = model(**inputs, logits_to_keep=columns).logits
    return logits[tags[:, columns]][:, label_ids]


class PRMScorer:
    """Step scores from a PRM checkpoint (see the module docstring).

    ``device`` defaults to CUDA when available; ``dtype`` to bfloat16 there and float32 on CPU.
    ``batch_size`` solutions go through the model together (padded).
    """

    def __init__(self, path: str | Path, *, device: str | None = None, dtype=None, batch_size: int = 8) -> None:
        import torch

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.processor, self.tokenizer = load_processor(path)
        self.tag_id, *self.label_ids = prm_token_ids(self.tokenizer, path)
        self.model = load_model(str(path), dtype).to(self.device).eval()
        self.batch_size = batch_size

    def text(self, item: PRMInput) -> str:
        """The full text the model reads for ``item``: the templated prompt, then the tagged steps."""
        return prm_text(self.processor, item)

    def score(self, items: Sequence[PRMInput]) -> list[list[float]]:
        """Every step's score for every item, in order (an item without steps gets [])."""
        scores: list[list[float]] = []
        for start in range(0, len(items), self.batch_size):
            scores.extend(self._score_batch(items[start : start + self.batch_size]))
        return scores

    def _score_batch(self, items: Sequence[PRMInput]) -> list[list[float]]:
        import torch

        texts = [self.text(item) for item in items]
        images = [image for item in items for image in item.images]
        inputs = model_inputs(self.processor, self.model, texts, images, self.device)
        with torch.no_grad():
            scores = tag_logits(self.model, inputs, self.tag_id, self.label_ids).float().softmax(-1)[:, 0]
        counts = (inputs["input_ids"] == self.tag_id).sum(-1).tolist()
        out = []
        for item, row_scores in zip(items, scores.split(counts), strict=True):
            if len(row_scores) != len(item.steps):
                raise ValueError(f"found {len(row_scores)} {PRM_TOKEN} tags for {len(item.steps)} steps")
            out.append(row_scores.tolist())
        return out
