"""Resumable run files: jsonl files a command appends to one finished item at a time.

Each row is written as one JSON line and flushed as its item finishes, so a killed run loses only
the item in progress. A rerun reads the rows already there (:func:`read_done`) and does the rest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mm_eureka_plugin.errors import UserError

logger = logging.getLogger(__name__)


class RunFileError(UserError):
    """A run file has a line that is not valid JSON before its last; the message names the line."""


def read_done(path: Path, redone: str) -> list[tuple[str, Any]]:
    """The rows of the run file ``path`` as (``"<path>, line N"``, parsed row); none when there is no file.

    A last line that is not valid JSON (a run killed mid-write) is cut from the file with a
    warning that its item is ``redone`` again. An invalid line before the last raises
    :class:`RunFileError`. A complete last row missing its newline gets one, so appends start a line.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows: list[tuple[str, Any]] = []
    offset = 0  # where the current line starts
    for number, raw in enumerate(lines, start=1):
        where = f"{path}, line {number}"
        if raw.strip():
            try:
                rows.append((where, json.loads(raw)))
            except ValueError:
                if any(rest.strip() for rest in lines[number:]):
                    raise RunFileError(
                        f"{where}: not valid JSON. Delete the line (its problem is {redone} again) or the directory."
                    ) from None
                logger.warning(
                    "%s: dropping a truncated last line (an interrupted run); it is %s again.", where, redone
                )
                with path.open("r+b") as out:
                    out.truncate(offset)
                return rows
        offset += len(raw) + 1
    if data and not data.endswith(b"\n"):
        with path.open("ab") as out:
            out.write(b"\n")
    return rows


@contextmanager
def appending(path: Path) -> Iterator[Callable[[Any], None]]:
    """Open the run file ``path`` for appending (its folder made if missing) and yield
    ``append(row)``, which writes ``row`` as one JSON line and flushes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:

        def append(row: Any) -> None:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()

        yield append
