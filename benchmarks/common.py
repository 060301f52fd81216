"""What the benchmarks share: timing one call, and the machine line their output starts with.

Each benchmark runs as a script, so this folder is on ``sys.path`` and they import it as ``common``.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Call ``fn``; returns the wall-clock seconds it took and what it returned."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def machine_line(note: str = "") -> str:
    """``Machine: <CPU>, <cores> cores, <memory> GiB, <GPU or no GPU>`` and ``; <note>`` when one is given."""
    import torch  # here, not above: some benchmarks use torch for this line only

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    memory = psutil.virtual_memory().total / 2**30
    line = f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, {gpu}"
    return f"{line}; {note}." if note else f"{line}."
