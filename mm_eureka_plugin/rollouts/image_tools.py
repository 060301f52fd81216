"""``image_tools``: the policy may crop and zoom into any image it has seen, over several turns.

A response that contains a call ::

    <crop image=N>x1, y1, x2, y2</crop>

(``image=N`` optional, default 1) gets, as the next user message, image N's box cut out of the
image's source pixels (the training data's original resolution when the run kept it) and put on the
run's pixel budget, as a new image numbered after the others. The box's corners are in image N's
pixels as the policy sees it (after the pixel budget, Qwen2.5-VL's grounding convention) with
``coordinates="pixels"``, or fractions of its width and height with ``"normalized"``. A response
with no ``<crop`` in it is the final answer, which the reward scores.

A call that cannot be served (no such image, a box outside the image or empty, a box that would be
zoomed more than ``max_zoom`` times, text that is not a call, the image limit reached) gets a
one-line error as the next user message, never an exception, and counts in ``tool_errors``; past
``max_tool_errors`` failed calls, a failed call ends the episode instead and is scored as the final
answer (whose reward it rarely earns). ``max_turns`` bounds the responses per sample (the last one
is scored whatever it holds; the turn before it is told so), ``max_tool_images`` the crops per sample.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from mm_eureka_plugin.data.images import ImageError, apply_pixel_budget
from mm_eureka_plugin.rollouts.types import RolloutPrompt, Turn

CALL = re.compile(r"<crop(?P<attrs>[^<>]*)>(?P<box>[^<>]*)</crop>")
"""One crop call: ``<crop image=N>x1, y1, x2, y2</crop>``."""
ATTRS = re.compile(r"\s*(?:image\s*=\s*\"?(?P<image>\d+)\"?\s*)?")
NUMBER = r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*"
BOX = re.compile(r"\s*[\[(]?" + ",?".join([NUMBER] * 4) + r"[\])]?\s*")
"""Four numbers, separated by commas or spaces, optionally in brackets."""
METRIC_KEYS = ("turns", "tool_calls", "tool_errors")

INSTRUCTIONS = {
    "pixels": "in the image's pixels as you see it, from the top-left corner",
    "normalized": "as fractions of the image's width and height, from 0 to 1, from the top-left corner",
}


def instructions(coordinates: str) -> str:
    """The system prompt text that explains the call format."""
    return (
        "You can look closer at any image you have seen. To crop and zoom into a region, end your turn with "
        "<crop image=N>x1, y1, x2, y2</crop>, where N numbers the images in the order you saw them (default 1) "
        f"and (x1, y1) and (x2, y2) are the region's top-left and bottom-right corners {INSTRUCTIONS[coordinates]}. "
        "The region comes back as a new image. Give your final answer in a turn without a crop call."
    )


class ToolError(ValueError):
    """A call that cannot be served; its message is the feedback the policy reads."""


@dataclass
class _Shown:
    """An image the policy has seen: as shown (on the budget) and its source pixels."""

    seen: Image.Image
    source: Image.Image


@dataclass
class ImageToolsEpisode:
    """One sample's crop-and-zoom episode (:class:`ImageTools`)."""

    tools: ImageTools
    prompt: RolloutPrompt
    shown: list[_Shown] = field(default_factory=list)
    turns: int = 0
    crops: int = 0
    errors: int = 0

    def step(self, response: str) -> Turn:
        self.turns += 1
        called = "<crop" in response
        metrics = {"turns": 1.0, "tool_calls": float(called), "tool_errors": 0.0}
        if not called or self.turns >= self.tools.max_turns:
            return Turn(done=True, metrics=metrics)
        try:
            text, images = self._crop(response)
        except ToolError as exc:
            metrics["tool_errors"] = 1.0
            self.errors += 1
            if self.tools.max_tool_errors is not None and self.errors > self.tools.max_tool_errors:
                return Turn(done=True, metrics=metrics)
            text, images = f"Crop failed: {exc}", []
        if self.turns == self.tools.max_turns - 1:
            text += " This is your last turn: give your final answer."
        content = [{"type": "text", "text": text}, *({"type": "image"} for _ in images)]
        return Turn(done=False, content=content, images=images, metrics=metrics)

    def _crop(self, response: str) -> tuple[str, list[Image.Image]]:
        """The text that introduces the crop of the first call in ``response``, and the crop."""
        match = CALL.search(response)
        if match is None:
            raise ToolError("write the call as <crop image=N>x1, y1, x2, y2</crop>.")
        attrs = ATTRS.fullmatch(match["attrs"])
        if attrs is None:
            raise ToolError(f"unknown attributes {match['attrs'].strip()!r}; the only one is image=N.")
        box = BOX.fullmatch(match["box"])
        if box is None:
            raise ToolError(f"the box {match['box'].strip()!r} is not four numbers x1, y1, x2, y2.")
        index = int(attrs["image"] or 1)
        if not self.shown:
            raise ToolError("there is no image to crop.")
        if not 1 <= index <= len(self.shown):
            raise ToolError(f"there is no image {index}; the images are 1 to {len(self.shown)}.")
        if self.crops >= self.tools.max_tool_images:
            raise ToolError(
                f"no more crops in this answer (at most {self.tools.max_tool_images}); give your final answer."
            )
        shown = self.shown[index - 1]
        x1, y1, x2, y2 = (float(value) for value in box.groups())
        width, height = (1.0, 1.0) if self.tools.coordinates == "normalized" else shown.seen.size
        if not (0 <= x1 <= width and 0 <= x2 <= width and 0 <= y1 <= height and 0 <= y2 <= height):
            limits = "0 to 1" if self.tools.coordinates == "normalized" else f"{shown.seen.width}x{shown.seen.height}"
            raise ToolError(f"the box is outside image {index} ({limits}).")
        if x2 <= x1 or y2 <= y1:
            raise ToolError("the box is empty: x2 must exceed x1 and y2 must exceed y1.")
        scale_x, scale_y = shown.source.width / width, shown.source.height / height
        left, top = math.floor(x1 * scale_x), math.floor(y1 * scale_y)
        right, bottom = max(math.ceil(x2 * scale_x), left + 1), max(math.ceil(y2 * scale_y), top + 1)
        region = shown.source.crop((left, top, right, bottom))
        try:
            seen = apply_pixel_budget(region, self.prompt.min_pixels, self.prompt.max_pixels)
        except ImageError as exc:
            raise ToolError(f"the box cannot be shown: {exc}.") from None
        zoom = max(seen.width / region.width, seen.height / region.height)
        if zoom > self.tools.max_zoom:
            raise ToolError(
                f"the box is too small: it would be zoomed {zoom:.0f} times, at most {self.tools.max_zoom:g}."
            )
        self.shown.append(_Shown(seen, region))
        self.crops += 1
        corners = ", ".join(f"{value:g}" for value in (x1, y1, x2, y2))
        return f"Image {len(self.shown)}: image {index} at [{corners}], {seen.width}x{seen.height} pixels.", [seen]


@dataclass
class ImageTools:
    """Multi-turn crop and zoom into the images seen (``<crop image=N>x1, y1, x2, y2</crop>``).

    ``coordinates``: ``pixels`` (of the image as the policy sees it) or ``normalized`` (0-1);
    ``max_turns``: responses per sample, the final answer included; ``max_tool_images``: crops per
    sample; ``max_zoom``: the most a crop is enlarged to reach the pixel budget's minimum;
    ``max_tool_errors``: failed calls answered with an error message, after which a failed call
    ends the episode and is scored (None: no limit); ``instructions``: add the call format to every
    training prompt's system message.
    """

    coordinates: Literal["pixels", "normalized"] = "pixels"
    max_turns: int = 4
    max_tool_images: int = 4
    max_zoom: float = 8.0
    max_tool_errors: int | None = None
    instructions: bool = True

    metric_keys = METRIC_KEYS
    uses_source_images = True

    def __post_init__(self) -> None:
        if self.coordinates not in INSTRUCTIONS:
            raise ValueError(f"coordinates must be one of {', '.join(INSTRUCTIONS)}, got {self.coordinates!r}.")
        if self.max_turns < 1 or self.max_tool_images < 0 or self.max_zoom < 1:
            raise ValueError("max_turns must be at least 1, max_tool_images at least 0 and max_zoom at least 1.")
        if self.max_tool_errors is not None and self.max_tool_errors < 0:
            raise ValueError(f"max_tool_errors must be at least 0 (or null: no limit), got {self.max_tool_errors}.")

    @property
    def max_added_images(self) -> int:
        """The most crops one sample can add: one per response but the last, at most ``max_tool_images``."""
        return min(self.max_tool_images, self.max_turns - 1)

    @property
    def system_prompt(self) -> str | None:
        """Text added to every training prompt's system message (None: nothing)."""
        return instructions(self.coordinates) if self.instructions else None

    def start(self, prompt: RolloutPrompt) -> ImageToolsEpisode:
        sources = prompt.source_images if len(prompt.source_images) == len(prompt.images) else prompt.images
        return ImageToolsEpisode(self, prompt, [_Shown(seen, source) for seen, source in zip(prompt.images, sources)])
