"""What the benchmarks share: timing one call, one training run with its memory watched, and the
machine line their output starts with.

Each benchmark runs as a script, so this folder is on ``sys.path`` and they import it as ``common``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
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


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of ``process`` and all its descendants, in bytes."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def watch(argv: list[str], log) -> tuple[int, int]:
    """Run ``argv`` in the repository, its output to ``log``; returns its exit code and the peak
    resident memory of its process tree in bytes (sampled every 0.5 s)."""
    peak = 0
    process = subprocess.Popen(argv, cwd=Path(__file__).resolve().parents[1], stdout=log, stderr=subprocess.STDOUT)
    watched = psutil.Process(process.pid)
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(watched))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    done.set()
    sampler.join()
    return code, peak


def train_run(recipe: Path, out_dir: Path, sets: list[str]) -> tuple[float, int, dict, dict]:
    """Run ``mm-eureka train recipe`` with its output in ``out_dir`` and ``--set`` each of ``sets``;
    returns the wall seconds, the peak memory (bytes), and the metrics of each training step and of
    each evaluation by step. Exits naming the log when the run fails."""
    argv = [sys.executable, "-m", "mm_eureka_plugin.cli", "train", str(recipe)]
    base = [f"openrlhf.ckpt.output_dir={out_dir}", f"openrlhf.logger.tensorboard_dir={out_dir / 'tensorboard'}"]
    for item in base + sets:
        argv += ["--set", item]
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "train.log").open("w") as log:
        seconds, (code, peak) = timed(lambda: watch(argv, log))
    if code != 0:
        raise SystemExit(f"run failed ({code}); see {out_dir / 'train.log'}")
    lines = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    train = {line["step"]: line["metrics"] for line in lines if line["kind"] == "train"}
    evals = {line["step"]: line["metrics"] for line in lines if line["kind"] == "eval"}
    return seconds, peak, train, evals
