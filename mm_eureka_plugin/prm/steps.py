"""Step splitters: cut a solution into the steps a process reward model (PRM) scores.

MM-PRM (arXiv 2505.13427) scores a solution step by step: the policy writes
``<step>...</step>`` spans and then ``<answer>...</answer>``, and the PRM gives each step a score
in (0, 1). Other layouts (paragraphs, "Step k:" markers) need another splitter, so splitting is a
component kind, ``step_splitter``, open to plugins.

Contract of a splitter: ``splitter(solution: str) -> list[Step]``, steps in order, where

- ``step.text`` is non-empty and has no surrounding whitespace;
- ``solution[step.start:step.end] == step.text``: offsets are characters of the ORIGINAL
  solution, kept so that a step's score can be credited at the token that ends the step (dense
  PRM rewards: the rollout executor maps ``step.end`` to the token whose decoding reaches it);
- if nothing matches the splitter's layout but the solution has non-whitespace text, the whole
  stripped solution is one step; an empty or all-whitespace solution gives ``[]``;
- no string makes a splitter raise, and the time is linear in the length of the solution (the
  regular expressions below are written so that they cannot backtrack catastrophically).

For step labelling (``mm-eureka prm annotate``) a splitter also has ``join(steps) -> str``: the
steps written in its layout, which a policy continues from; ``splitter(join(steps) + rest)``
starts with ``steps``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One step of a solution: its stripped text and its character span ``[start, end)`` in the solution."""

    text: str
    start: int
    end: int


def _step(solution: str, start: int, end: int) -> Step | None:
    """The step ``solution[start:end]`` with surrounding whitespace removed; None if nothing is left."""
    segment = solution[start:end]
    left = len(segment) - len(segment.lstrip())
    right = len(segment.rstrip())
    if left >= right:
        return None
    return Step(segment[left:right], start + left, start + right)


def _or_whole(solution: str, steps: list[Step]) -> list[Step]:
    """``steps``, or the whole stripped solution as one step when no step was found."""
    if steps:
        return steps
    whole = _step(solution, 0, len(solution))
    return [whole] if whole is not None else []


def _steps(solution: str, spans: list[tuple[int, int]]) -> list[Step]:
    steps = (_step(solution, start, end) for start, end in spans)
    return _or_whole(solution, [s for s in steps if s is not None])


_STEP_TAGS = re.compile(r"</?step>|<answer>")


class TagSplitter:
    """MM-PRM's own format: each <step>...</step> span, then the last <answer>...</answer> as the final step.

    Tags are matched exactly (lower case) and step contents may span lines. A step's content ends
    at the first of ``</step>``, the next ``<step>`` or an ``<answer>``, or at the end of the text,
    so an unclosed last ``<step>`` runs to the answer (or the end) and a nested ``<step>`` closes
    the open one; a stray ``</step>`` is ignored. With ``include_answer`` (default), the content of
    the last ``<answer>`` (up to its ``</answer>``, or the end when unclosed) is appended as the
    final step. Empty steps are dropped.
    """

    def __init__(self, include_answer: bool = True) -> None:
        self.include_answer = include_answer

    def join(self, steps) -> str:
        return "".join(f"<step>{step}</step>" for step in steps)

    def __call__(self, solution: str) -> list[Step]:
        spans = []
        open_at = None  # where the content of the open <step> starts
        for tag in _STEP_TAGS.finditer(solution):
            if open_at is not None:
                spans.append((open_at, tag.start()))
            open_at = tag.end() if tag.group() == "<step>" else None
        if open_at is not None:
            spans.append((open_at, len(solution)))
        if self.include_answer:
            answer_at = solution.rfind("<answer>")
            if answer_at >= 0:
                start = answer_at + len("<answer>")
                end = solution.find("</answer>", start)
                spans.append((start, end if end >= 0 else len(solution)))
        return _steps(solution, spans)


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
"""A newline, then at least one line holding only whitespace (``\\s*`` may span several)."""


class BlankLineSplitter:
    """Paragraphs: steps are separated by one or more blank (whitespace-only) lines.

    Each paragraph is stripped; empty ones are dropped.
    """

    def join(self, steps) -> str:
        return "".join(f"{step}\n\n" for step in steps)

    def __call__(self, solution: str) -> list[Step]:
        spans, start = [], 0
        for gap in _PARAGRAPH_BREAK.finditer(solution):
            spans.append((start, gap.start()))
            start = gap.end()
        spans.append((start, len(solution)))
        return _steps(solution, spans)


STEP_MARKER = re.compile(
    r"^[ \t#*_-]*"  # indentation and markdown decoration: "### ", "**", "- **", "__"
    r"step[ \t]*\d+"  # "Step 3" (any case)
    r"[ \t*_\r]*"  # closing decoration: "**Step 3**:"
    r"(?:[:.)\-\u2013\u2014]|$)",  # then ":", ".", ")", "-", en or em dash, or the end of the line
    re.IGNORECASE | re.MULTILINE,
)
"""A "Step k" marker at the start of a line.

Matches "Step 1:", "step 2.", "**Step 3:**", "**Step 3**:", "### Step 4 -", "- Step 5)" and a line
holding only "**Step 6**"; not "Step 1 is to ..." (no separator after the number) nor a "Step 1:"
in the middle of a line. Every repeated part is a single character class followed by a
character outside it, so a failed match backtracks at most once over each run: linear time.
"""


class StepKSplitter:
    """Step-k markers ("Step 1:", "**Step 2:**", ...): each step runs from its marker to the next one.

    A marker sits at the start of a line; see :data:`STEP_MARKER` for the forms recognised
    (case-insensitive, optional markdown decoration, a separator after the number). A step's text
    includes its marker; text before the first marker is not a step.
    """

    def join(self, steps) -> str:
        return "".join(f"{step}\n" for step in steps)

    def __call__(self, solution: str) -> list[Step]:
        starts = [m.start() for m in STEP_MARKER.finditer(solution)]
        return _steps(solution, list(zip(starts, starts[1:] + [len(solution)])))
