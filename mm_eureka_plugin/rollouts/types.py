"""The rollout executor contract's types: what an episode starts from (:class:`RolloutPrompt`) and
what it answers each policy response with (:class:`Turn`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mm_eureka_plugin.data.images import MAX_PIXELS, MIN_PIXELS


@dataclass
class RolloutPrompt:
    """The start of one rollout sample.

    ``prompt`` is the prompt text as the policy reads it (chat template applied); ``images`` the
    prompt's PIL images as the policy sees them (on the pixel budget), in order; ``source_images``
    the same images at their source resolution when the training data kept them (an executor with
    ``uses_source_images``), else the same as ``images``; ``label`` the gold answer; ``metadata``
    the data row's metadata; ``min_pixels``/``max_pixels`` the run's pixel budget, which an image
    an episode shows the policy should already be on (:func:`~mm_eureka_plugin.data.images.apply_pixel_budget`).
    """

    prompt: str
    images: list = field(default_factory=list)
    source_images: list = field(default_factory=list)
    label: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS


@dataclass
class Turn:
    """An episode's answer to one policy response.

    ``done``: the episode ends and that response is the one the reward scores. Otherwise
    ``content`` is the next user message, as chat content parts (``{"type": "text", "text": ...}``
    and ``{"type": "image"}``, the image parts taking ``images`` in order), and the policy
    responds again. ``metrics``: numbers summed over the episode and logged per sample under the
    executor's ``metric_keys``.
    """

    done: bool
    content: list[dict[str, Any]] = field(default_factory=list)
    images: list = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def problem(self) -> str | None:
        """Why this turn cannot be shown to the policy; None when it can."""
        if self.done:
            return None
        if not isinstance(self.content, list) or not all(isinstance(part, dict) for part in self.content):
            return f"its content is a {type(self.content).__name__}, not a list of chat content parts"
        parts = sum(part.get("type") == "image" for part in self.content)
        if parts != len(self.images):
            return f"its content has {parts} image part(s) but it carries {len(self.images)} image(s)"
        if not self.content:
            return "it is not done but has no content for the policy"
        return None
