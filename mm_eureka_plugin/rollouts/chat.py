"""The text between two policy responses, written by the model's own chat template."""

from __future__ import annotations

from typing import Any

_MARK = "\x00mm-eureka-response\x00"


def continuation(processor: Any, response: str, content: list[dict[str, Any]]) -> str:
    """What follows ``response`` (decoded with its special tokens) in the chat: the rest of what
    closes the assistant's message (its end-of-turn token when the response did not end with it),
    a user message with ``content`` (chat content parts) and the assistant's generation prompt,
    as ``processor.apply_chat_template`` writes them. Raises ValueError for a chat template that
    does not write a conversation as a prefix of its continuation."""
    history = [{"role": "user", "content": "?"}, {"role": "assistant", "content": _MARK}]
    closed = processor.apply_chat_template(history, tokenize=False)
    extended = processor.apply_chat_template(
        [*history, {"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    if _MARK not in closed or not extended.startswith(closed):
        raise ValueError("the chat template does not write a conversation as a prefix of its continuation.")
    closing = closed[closed.index(_MARK) + len(_MARK) :]
    written = next(n for n in range(len(closing), -1, -1) if response.endswith(closing[:n]))
    return closing[written:] + extended[len(closed) :]
