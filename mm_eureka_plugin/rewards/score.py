"""Scoring a JSON-lines file of responses with named rewards (``mm-eureka reward score``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from mm_eureka_plugin.errors import UserError
from mm_eureka_plugin.rewards.types import RewardSample
from mm_eureka_plugin.rewards.weighted import WeightedReward

BATCH_ROWS = 256
"""Rows scored per reward call (rewards judge a batch at once, e.g. in parallel workers)."""


class ScoreFileError(UserError):
    """A file cannot be scored; the message names the file and, for a bad row, its 1-based line."""


def score_file(path: str | Path, reward_names: list[str], *, max_images: int = 16) -> Iterator[dict[str, Any]]:
    """Score every row of ``path`` with the rewards ``reward_names`` (registered names or references).

    A row is a JSON object with ``response`` and ``answer`` (strings), optionally ``prompt``
    (string), ``images`` (paths, absolute or relative to the file's folder; at most ``max_images``,
    loaded with :func:`mm_eureka_plugin.data.images.load_image` and its size limits), ``metadata``
    (object) and ``id``. Blank lines are skipped. Yields, per row in order, ``{"id"?, "reward",
    <component>: value, ..., "error"?}``: ``reward`` sums the rewards; ``id`` is the row's (or
    its metadata's) id, if any; ``error`` only when a reward failed on it. A row that cannot be
    scored (not UTF-8, invalid JSON, a missing or mistyped field, an unreadable image) yields
    ``{"row": N, "error": "<file>, row N: <reason>"}`` and the others are still scored. Raises
    :class:`ScoreFileError` for a missing file or no reward.
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"{path}: no such file.")
    if not reward_names:
        raise ScoreFileError("name at least one reward to score with.")
    reward = WeightedReward([{"name": name, "weight": 1.0} for name in reward_names])
    rows = _read_samples(path, max_images)
    while batch := list(islice(rows, BATCH_ROWS)):
        results = iter(reward([sample for _, sample in batch if not isinstance(sample, ScoreFileError)]))
        for row_id, sample in batch:
            if isinstance(sample, ScoreFileError):
                yield {"row": row_id, "error": str(sample)}
                continue
            result = next(results)
            out: dict[str, Any] = {} if row_id is None else {"id": row_id}
            out["reward"] = result.reward
            out.update(result.components)
            if result.error is not None:
                out["error"] = result.error
            yield out


def _read_samples(path: Path, max_images: int) -> Iterator[tuple[Any, RewardSample | ScoreFileError]]:
    """Per non-blank line: (its id, its sample), or (its number, why it cannot be scored)."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = (raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw).decode("utf-8")
                if line.strip():
                    yield _sample(_json_row(path, number, line), path, number, max_images)
            except UnicodeDecodeError as exc:
                yield (
                    number,
                    ScoreFileError(f"{path}, row {number}: not UTF-8 text (byte {exc.start + 1} of the line)."),
                )
            except ScoreFileError as exc:
                yield number, exc


def _json_row(path: Path, number: int, line: str) -> dict[str, Any]:
    """Line ``number`` of ``path`` as a JSON object, or :class:`ScoreFileError`."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ScoreFileError(f"{path}, row {number}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
    if not isinstance(row, dict):
        raise ScoreFileError(f"{path}, row {number}: expected a JSON object, got {type(row).__name__}.")
    return row


def _sample(row: dict[str, Any], path: Path, number: int, max_images: int) -> tuple[Any, RewardSample]:
    where = f"{path}, row {number}"
    for key in ("response", "answer"):
        if key not in row:
            raise ScoreFileError(f"{where}: missing '{key}'. Each row needs 'response' and 'answer'.")
        if not isinstance(row[key], str):
            raise ScoreFileError(f"{where}: '{key}' must be a string, got {type(row[key]).__name__}.")
    prompt = row.get("prompt") or ""
    if not isinstance(prompt, str):
        raise ScoreFileError(f"{where}: 'prompt' must be a string, got {type(prompt).__name__}.")
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ScoreFileError(f"{where}: 'metadata' must be an object, got {type(metadata).__name__}.")
    row_id = row.get("id", metadata.get("id"))
    if row_id is not None:
        metadata = {**metadata, "id": row_id}
    images = _images(row.get("images") or [], path, where, max_images)
    return row_id, RewardSample(row["response"], row["answer"], prompt, images, metadata)


def _images(refs: Any, path: Path, where: str, max_images: int) -> list:
    if not isinstance(refs, list) or not all(isinstance(ref, str) for ref in refs):
        raise ScoreFileError(f"{where}: 'images' must be a list of image paths.")
    if len(refs) > max_images:
        raise ScoreFileError(f"{where}: {len(refs)} images, more than max_images={max_images}.")
    if not refs:
        return []
    from mm_eureka_plugin.data.images import ImageError, load_image, resolve_image_ref  # PIL and transformers

    images = []
    for ref in refs:
        try:
            images.append(load_image(resolve_image_ref(ref, path.parent)))
        except ImageError as exc:
            raise ScoreFileError(f"{where}: image {ref!r}: {exc}") from None
    return images
