"""What the policy wrote: ``<ckpt.output_dir>/samples.jsonl`` and ``mm-eureka samples``.

``plugin.log_samples`` (N, default :data:`DEFAULT_LOG_SAMPLES`) training samples of every step
are appended to the run's ``samples.jsonl`` by the process that writes its ``metrics.jsonl``
(:mod:`mm_eureka_plugin.patches.ppo_trainer`), one JSON object per line::

    {"step": 12, "prompt_id": "train-00017", "prompt": "...", "images": ["train-00017.png"],
     "response": "...", "rewards": {"accuracy": 1.0, "format": 0.0}, "reward": 1.0,
     "advantage": 1.94, "reward_error": null}

``rewards`` holds the reward's components, ``reward`` the total the trainer used, ``advantage``
the sample's advantage (its mean over the response tokens: one value for an outcome reward),
``reward_error`` the message of a reward that failed (the sample then has reward 0). Images are
named by file name; texts longer than :data:`MAX_TEXT` characters keep their head and tail around
a marker.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mm_eureka_plugin.errors import UserError

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"
DEFAULT_LOG_SAMPLES = 4
"""Samples logged per step unless the recipe sets ``plugin.log_samples`` (0 turns it off)."""
MAX_TEXT = 2000
"""Characters kept of a prompt, response or error: the first two thirds and the last third."""
FIELDS = ("step", "prompt_id", "prompt", "images", "response", "rewards", "reward", "advantage", "reward_error")


class SamplesError(UserError):
    """A samples file that cannot be read; the message names it."""


def cut(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` if it has at most ``limit`` characters, else its head and tail around a marker
    that says how many characters were cut (a response's answer is usually at its end)."""
    if len(text) <= limit:
        return text
    head = 2 * limit // 3
    tail = limit - head
    return f"{text[:head]} [... {len(text) - limit} characters cut ...] {text[-tail:]}"


def spread(count: int, total: int) -> list[int]:
    """``min(count, total)`` indices spread evenly over ``range(total)``, from 0."""
    count = min(count, total)
    return [i * total // count for i in range(count)]


def sample_row(
    *,
    step: int,
    prompt_id: str | None,
    prompt: str,
    images: list[str],
    response: str,
    rewards: dict[str, float],
    reward: float,
    advantage: float,
    reward_error: str | None,
) -> dict[str, Any]:
    """One line of ``samples.jsonl`` (module docstring), texts cut to :data:`MAX_TEXT`."""
    return {
        "step": int(step),
        "prompt_id": prompt_id,
        "prompt": cut(prompt),
        "images": [Path(str(image)).name for image in images],
        "response": cut(response),
        "rewards": {key: float(value) for key, value in rewards.items()},
        "reward": float(reward),
        "advantage": float(advantage),
        "reward_error": None if reward_error is None else cut(reward_error),
    }


def append_samples(output_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to ``output_dir/samples.jsonl``, one write of whole lines."""
    if not rows:
        return
    path = Path(output_dir) / SAMPLES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``samples.jsonl`` (or of ``RUN_DIR/samples.jsonl``). A line that is not a
    JSON object with every field (e.g. cut by a kill) is skipped with a warning naming the file
    and line; a missing file raises :class:`SamplesError`."""
    path = Path(path)
    if path.is_dir():
        path = path / SAMPLES_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise SamplesError(
            f"{path}: no such file (a run writes it when plugin.log_samples is above 0, from its first step)"
        ) from None
    except OSError as exc:
        raise SamplesError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            logger.warning("%s:%d: skipped line: not JSON (%s)", path, number, exc.msg)
            continue
        missing = [key for key in FIELDS if key not in row] if isinstance(row, dict) else list(FIELDS)
        if missing or not isinstance(row["step"], int):
            logger.warning("%s:%d: skipped line: not a sample (missing or bad %s)", path, number, missing or ["step"])
            continue
        rows.append(row)
    return rows


def select(
    rows: list[dict[str, Any]], step: int | None = None, order: str | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """The rows to show: those of ``step`` (default: the last step, or every step when ``order``
    is given), ordered by reward (``order`` ``"worst"``: lowest first; ``"best"``: highest first)
    and cut to ``limit`` when ordered."""
    if step is None and order is None and rows:
        step = max(row["step"] for row in rows)
    chosen = [row for row in rows if step is None or row["step"] == step]
    if order is None:
        return chosen
    return sorted(chosen, key=lambda row: row["reward"], reverse=order == "best")[:limit]


def format_sample(row: dict[str, Any]) -> str:
    """A sample as a few readable lines: a header with step, prompt, rewards and advantage, then
    the prompt, images, response and any reward error."""
    components = ", ".join(f"{key} {value:.2f}" for key, value in row["rewards"].items())
    header = (
        f"--- step {row['step']} | prompt {row['prompt_id'] or '?'} | reward {row['reward']:.3f}"
        f"{f' ({components})' if components else ''} | advantage {row['advantage']:+.3f}"
    )
    lines = [header, f"prompt:   {row['prompt']}"]
    if row["images"]:
        lines.append(f"images:   {', '.join(row['images'])}")
    lines.append(f"response: {row['response']}")
    if row["reward_error"]:
        lines.append(f"reward error: {row['reward_error']}")
    return "\n".join(lines)
