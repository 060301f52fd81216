"""``openrlhf.utils.vlm_utils``: a prompt's images are processed once per group of samples.

OpenRLHF's rollout actor answers ``generate_responses(prompt, ..., num_samples=n, images)`` by
gathering n executor calls, and each call loads the prompt's images and runs the processor on them
(``process_prompt_with_images``): n times the work, and n copies of the same pixel tensors in the
reply Ray sends back. :func:`share_group_inputs` wraps a ``generate_responses``: it processes
the prompt once and puts the result in a context variable, which the n executor tasks inherit;
the patched ``process_prompt_with_images`` hands it to every call with that processor, prompt and
images object (a new token list, dict and image list per call, the same tensors, which pickle
once). Calls outside a group behave as upstream.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class _Group:
    processor: Any
    prompt: str
    images: Any
    token_ids: list
    mm_train_inputs: dict | None
    pil_images: list


_GROUP: ContextVar[_Group | None] = ContextVar("mm_eureka_prompt_group", default=None)


def share_group_inputs(generate_responses):
    """Wrap a rollout actor's ``generate_responses`` (OpenRLHF 0.11.2's signature) so that the
    prompt's images are processed once for all ``num_samples`` samples."""

    @functools.wraps(generate_responses)
    async def wrapper(self, prompt, label, sampling_params, max_length, hf_tokenizer, num_samples=1, images=None):
        # Ray pickles actor classes, and with them this closure, by value: module-level helpers
        # only (a ContextVar does not pickle).
        token = _open_group(hf_tokenizer, prompt, images) if num_samples > 1 else None
        try:
            return await generate_responses(
                self, prompt, label, sampling_params, max_length, hf_tokenizer, num_samples=num_samples, images=images
            )
        finally:
            _close_group(token)

    return wrapper


def _open_group(processor, prompt: str, images) -> Token | None:
    """Process ``prompt`` with ``images`` and make the result the current group's (a token to undo
    it), when there are images and a processor; else None."""
    if not images or not hasattr(processor, "image_processor"):
        return None
    from openrlhf.utils import vlm_utils

    return _GROUP.set(
        _Group(processor, prompt, images, *vlm_utils.process_prompt_with_images(processor, prompt, images))
    )


def _close_group(token: Token | None) -> None:
    if token is not None:
        _GROUP.reset(token)


def patch(module: ModuleType) -> None:
    original = module.process_prompt_with_images

    @functools.wraps(original)
    def process_prompt_with_images(processor, prompt, images):
        group = _GROUP.get()
        if group is None or group.processor is not processor or group.images is not images or group.prompt != prompt:
            return original(processor, prompt, images)
        inputs = None if group.mm_train_inputs is None else dict(group.mm_train_inputs)
        return list(group.token_ids), inputs, list(group.pil_images)

    module.process_prompt_with_images = process_prompt_with_images
