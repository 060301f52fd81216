"""MM-Eureka's system prompts, and the ``system_prompt`` parameter of the data formats."""

from __future__ import annotations

from typing import Any

SYSTEM_PROMPTS = {
    # MM-Eureka-7B's training prompt, verbatim (the grammar slips are theirs).
    "mm-eureka-7b": (
        "Solve the question. The user asks a question, and you solves it. You first thinks about the "
        "reasoning process in the mind and then provides the user with the answer. The answer is in latex "
        "format and wrapped in $...$. The final answer must be wrapped using the \\boxed{} command. The "
        "reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
        "respectively, i.e., <think> Since $1+1=2$, so the answer is $2$. </think><answer> The answer is "
        "$\\boxed{2}$ </answer>, which means assistant's output should start with <think> and end with </answer>."
    ),
    # The reasoning prompt template of MM-Eureka's repository, verbatim (the grammar slips are theirs).
    "mm-eureka-32b": (
        "You should first thinks about the reasoning process in the mind and then provides the user with the "
        "answer. Your answer must be in latex format and wrapped in $...$.The reasoning process and answer are "
        "enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> Since "
        "$1+1=2$, so the answer is $2$. </think><answer> $2$ </answer>, which means your output should start "
        "with <think> and end with </answer>."
    ),
    # The system prompt of MM-Eureka's MMK12 evaluation (SYSTEM_PROMPT_32B of
    # eval/mmk12/evaluate_mmk12.py, used for 7B too), verbatim: the typos and the doubled
    # backslashes of "\\boxed" are in the text the model saw.
    "mmk12-eval": (
        "Solve the question. The user asks a question, and you solves it. You first thinks about the "
        "reasoning process in the mind and then provides the user with the answer. The answer is in latex "
        "format and wrapped in $...$. The final answer must be wrapped using the \\\\boxed{} command. Th "
        "answer should be enclosed within <answer> </answer> tags, i.e., Since $1+1=2$, so the answer is $2$. "
        "<answer> The answer is $\\\\boxed{2}$ </answer>, which means the final answer assistant's output "
        "should start with <answer> and end with </answer>."
    ),
}
"""Named system prompts a recipe can choose with ``system_prompt: <name>``."""

NO_SYSTEM_PROMPT = "none"
"""``system_prompt`` value that removes the data's system message."""


def resolve_system_prompt(value: str | None) -> str | None:
    """The text for a ``system_prompt`` parameter: a name in :data:`SYSTEM_PROMPTS`, ``"none"``
    (returned as is), or literal text; ``None`` (keep the data's) stays ``None``."""
    if value is None or value == NO_SYSTEM_PROMPT:
        return value
    if not value.strip():
        raise ValueError(f"system_prompt is empty; use '{NO_SYSTEM_PROMPT}' for no system prompt.")
    return SYSTEM_PROMPTS.get(value, value)


def apply_system_prompt(messages: list[dict[str, Any]], prompt: str | None) -> list[dict[str, Any]]:
    """``messages`` with :func:`resolve_system_prompt`'s ``prompt`` as the system message: ``None``
    keeps them, ``"none"`` drops system messages, text replaces the system message or prepends one."""
    if prompt is None:
        return messages
    rest = [m for m in messages if m["role"] != "system"]
    if prompt == NO_SYSTEM_PROMPT:
        return rest
    return [{"role": "system", "content": [{"type": "text", "text": prompt}]}, *rest]


def add_to_system_prompt(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """``messages`` with ``text`` at the end of the first system message (after a blank line), or
    as a new first system message when there is none."""
    index = next((i for i, message in enumerate(messages) if message["role"] == "system"), None)
    if index is None:
        return [{"role": "system", "content": [{"type": "text", "text": text}]}, *messages]
    content = messages[index]["content"]
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    message = {**messages[index], "content": [*parts, {"type": "text", "text": f"\n\n{text}" if parts else text}]}
    return [*messages[:index], message, *messages[index + 1 :]]
