"""``mm-eureka plot``: the curves of a training run's ``metrics.jsonl`` as one PNG.

Each line of ``RUN_DIR/metrics.jsonl`` is ``{"step": int, "kind": "train" | "eval", "time": float,
"metrics": {name: float}}``. A resumed run may write a step again: the last line for a (kind, step)
wins. Lines that are not JSON, or not such an object, are skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mm_eureka_plugin.errors import UserError

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
DEFAULT_PNG = "metrics.png"

Metrics = dict[str, dict[int, dict[str, float]]]


class PlotError(UserError):
    """A run directory or metrics file that cannot be plotted; the message names the path."""


def read_metrics(path: str | Path) -> Metrics:
    """Read a ``metrics.jsonl``: ``{kind: {step: {name: value}}}``, steps in increasing order.

    The last line for a (kind, step) replaces earlier ones whole. Non-numeric metric values are
    dropped. A line that is not JSON (e.g. cut by a kill) or not a metrics object is skipped with
    a warning naming the file and the line number; a file with no usable line raises PlotError.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise PlotError(f"{path}: no such file") from None
    except OSError as exc:
        raise PlotError(f"{path}: cannot read: {exc.strerror or exc}") from None
    runs: Metrics = {}
    skipped = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            kind, step, metrics = _parse_line(line)
        except ValueError as exc:
            logger.warning("%s:%d: skipped line: %s", path, number, exc)
            skipped += 1
            continue
        runs.setdefault(kind, {})[step] = metrics
    if not runs:
        detail = f"{skipped} line(s), none usable" if skipped else "it is empty"
        raise PlotError(f"{path}: no usable metrics line ({detail})")
    return {kind: dict(sorted(steps.items())) for kind, steps in runs.items()}


def _parse_line(line: str) -> tuple[str, int, dict[str, float]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    step, kind, metrics = row.get("step"), row.get("kind"), row.get("metrics")
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if not isinstance(step, int) or isinstance(step, bool):
        raise ValueError(f"'step' must be an integer, got {step!r}")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"'kind' must be a string, got {kind!r}")
    if not isinstance(metrics, dict):
        raise ValueError(f"'metrics' must be an object, got {type(metrics).__name__}")
    values = {
        str(name): float(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return kind, step, values


@dataclass(frozen=True)
class Panel:
    """One subplot: a title, a y label, a function picking its (label, kind, metric) series, and
    an optional function giving a note to print on it (None: no note)."""

    title: str
    ylabel: str
    series: Callable[[Metrics], list[tuple[str, str, str]]]
    note: Callable[[Metrics], str | None] = lambda runs: None


def _train(*names: str) -> Callable[[Metrics], list[tuple[str, str, str]]]:
    return lambda runs: [(name, "train", name) for name in names]


def _first_present(*names: str) -> Callable[[Metrics], list[tuple[str, str, str]]]:
    """The first of ``names`` that a train line has (the same quantity logged under two names)."""

    def series(runs: Metrics) -> list[tuple[str, str, str]]:
        present = {name for metrics in runs.get("train", {}).values() for name in metrics}
        return next(([(name, "train", name)] for name in names if name in present), [])

    return series


def _eval_pass1(runs: Metrics) -> list[tuple[str, str, str]]:
    names = sorted({name for metrics in runs.get("eval", {}).values() for name in metrics})
    return [(m.group(1), "eval", name) for name in names if (m := re.fullmatch(r"eval_(.+)_pass1", name))]


def _response_length(runs: Metrics) -> list[tuple[str, str, str]]:
    return [("train", "train", "response_length"), ("eval (mean)", "eval", "eval_response_length_mean")]


def _timings(runs: Metrics) -> list[tuple[str, str, str]]:
    names = sorted({name for metrics in runs.get("train", {}).values() for name in metrics})
    return [
        (name.removeprefix("timing/"), "train", name)
        for name in names
        if name.startswith("timing/") and name != "timing/step_total"
    ]


def _filter_groups(runs: Metrics) -> list[tuple[str, str, str]]:
    return [
        ("kept", "train", "filter/kept"),
        ("dropped: accuracy under range", "train", "filter/dropped_low"),
        ("dropped: accuracy over range", "train", "filter/dropped_high"),
    ]


def _loss_at_zero(runs: Metrics) -> str | None:
    """Say so when the policy loss reads 0 on some steps: an update on samples of the current
    policy (ratio 1) has a clipped log-ratio term of 0 and a gradient that is not 0."""
    _, values = _points(runs, "train", "policy_loss")
    zeros = sum(abs(value) < 1e-6 for value in values)
    if not zeros:
        return None
    return (
        f"0 on {zeros} of {len(values)} steps: on-policy\n(ratio 1) the value is 0, the gradient\n"
        "is not (see Actor grad norm)"
    )


PANELS = (
    Panel("Reward (training samples, after the filter)", "mean per sample", _train("reward", "accuracy", "format")),
    Panel("Eval pass@1 (greedy if eval temperature 0)", "pass@1", _eval_pass1),
    Panel("Accuracy filter", "prompt groups per step", _filter_groups),
    Panel("Response length", "tokens", _response_length),
    Panel("Policy loss (value)", "loss", _train("policy_loss"), _loss_at_zero),
    Panel("Clip fraction", "fraction of tokens", _first_present("policy_clip_frac", "ppo_clip_ratio")),
    Panel("Policy drift / KL", "nats", _train("policy_drift", "ppo_kl")),
    Panel("Actor grad norm", "norm", _train("actor_grad_norm")),
    Panel("Step time by phase", "seconds", _timings),
)


def _points(runs: Metrics, kind: str, name: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for step, metrics in runs.get(kind, {}).items():
        if name in metrics:
            steps.append(step)
            values.append(metrics[name])
    return steps, values


def layout(runs: Metrics) -> list[tuple[Panel, list[tuple[str, list[int], list[float]]], str | None]]:
    """The panels to draw for ``runs``: each with its (label, steps, values) lines and its note;
    a panel none of whose metrics is present is left out."""
    drawn = []
    for panel in PANELS:
        lines = [(label, *_points(runs, kind, name)) for label, kind, name in panel.series(runs)]
        lines = [line for line in lines if line[1]]
        if lines:
            drawn.append((panel, lines, panel.note(runs)))
    return drawn


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``RUN_DIR/metrics.jsonl`` as a grid of panels; write a PNG (default ``RUN_DIR/metrics.png``).

    Panels, each drawn only when one of its metrics is present, x axis = step:

    - Reward: ``reward``, with ``accuracy`` and ``format``: means over the samples trained on (the
      groups the accuracy filter kept)
    - Eval pass@1: every ``eval_<dataset>_pass1`` (eval lines; the synthetic task's datasets are its
      colours, and ``all``)
    - Accuracy filter: ``filter/kept``, ``filter/dropped_low``, ``filter/dropped_high`` (groups)
    - Response length: ``response_length`` (train) and ``eval_response_length_mean`` (eval)
    - Policy loss: ``policy_loss``, with a note when it reads 0 on some steps (on-policy)
    - Clip fraction: ``policy_clip_frac``, else ``ppo_clip_ratio`` (OpenRLHF's name for it)
    - Policy drift / KL: ``policy_drift`` and ``ppo_kl``
    - Actor grad norm: ``actor_grad_norm``
    - Step time by phase: one line per ``timing/*`` key but ``timing/step_total``

    Other metrics are not drawn. Returns the PNG's path. Raises PlotError for a missing directory
    or file, a file with no usable line, or one with none of the metrics above.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PlotError(f"{run_dir}: not a directory")
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise PlotError(f"{path}: no such file (is {run_dir} a training run directory?)")
    runs = read_metrics(path)

    drawn = layout(runs)
    if not drawn:
        raise PlotError(f"{path}: none of the plotted metrics is present (see `mm_eureka_plugin.plot.plot_run`)")

    ncols = min(3, len(drawn))
    nrows = math.ceil(len(drawn) / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.2 * nrows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"{run_dir.resolve().name}: {path.name}")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (panel, lines, note) in zip(axes, drawn):
        for label, steps, values in lines:
            ax.plot(steps, values, label=label, marker="." if len(steps) < 50 else None, linewidth=1.2)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        if note:
            ax.text(0.98, 0.04, note, transform=ax.transAxes, fontsize=7, ha="right", va="bottom", alpha=0.8)
    for ax in axes[len(drawn) :]:
        ax.set_visible(False)

    out = run_dir / DEFAULT_PNG if out is None else Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", dpi=100)
    except OSError as exc:
        raise PlotError(f"{out}: cannot write: {exc.strerror or exc}") from None
    return out
