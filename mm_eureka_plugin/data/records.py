"""The one internal prompt record every data format reads into, and the bad-row report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mm_eureka_plugin.errors import UserError

LABEL_COLUMN = "mm_eureka_label"
"""Column of converted data holding :func:`encode_label`'s answer + metadata, for the rollout reward."""


@dataclass
class PromptRecord:
    """One prompt: chat ``messages`` whose content lists hold ``{"type": "image"}`` placeholders
    in the order of ``images`` (references as read: path, ``file://`` URL, bytes, base64 or PIL
    image), the gold ``answer``, and the row's ``metadata`` (``id`` among others). ``row`` is the
    1-based row number in the source file."""

    row: int
    messages: list[dict[str, Any]]
    images: list[Any]
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be used: its 1-based number, why, and its ``id`` where the row has one."""

    row: int
    reason: str
    id: str | None = None

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


class DataError(UserError):
    """A data file cannot be read or used as it stands; the message names the file and what to fix."""


def encode_label(answer: str, metadata: dict[str, Any]) -> str:
    """The gold answer and the row's metadata as one string, the label OpenRLHF carries to rollout."""
    return json.dumps({"mm_eureka": 1, "answer": answer, "metadata": metadata}, ensure_ascii=False)


def decode_label(label: Any) -> tuple[str, dict[str, Any]]:
    """(answer, metadata) from a label: :func:`encode_label`'s output, or a plain answer string."""
    if isinstance(label, str) and label.startswith('{"mm_eureka": 1'):
        try:
            data = json.loads(label)
            return str(data["answer"]), dict(data.get("metadata") or {})
        except (ValueError, KeyError, TypeError):
            pass
    return ("" if label is None else str(label)), {}
