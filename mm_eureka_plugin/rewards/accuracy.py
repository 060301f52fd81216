"""MM-Eureka's accuracy reward (arXiv 2503.07365) on math-verify, with the original's bugs fixed.

How one sample (``response``, gold ``label``) is judged (the text handling is in :mod:`.answers`):

1. **Answer text** (:func:`.answers.answer_text`): the inside of the last ``<answer>...</answer>`` span,
   newlines included (the original's regex lacked DOTALL, and kept the tags, which stops
   math-verify from reading a bare ``<answer>3/4</answer>``); else everything after the last
   ``<answer>``; else everything after the last ``</think>``; else the whole response.
   Only its last ``max_answer_chars`` characters are read. Unicode math (√ π × − ÷ ≤ ≥ ≠ ± ° ∞ ½ ²
   ...) and the bare words sqrt and pi are rewritten as LaTeX (:func:`.answers.math_to_latex`).
2. **Choice letters**: a gold that is a letter of ``choices`` (also written "(B)", "B.", "option B",
   ``\\boxed{B}``, "The answer is B") is compared with the letter the answer picks
   (:func:`.answers.chosen_letter`), read as a standalone token: the original's fallback was a substring
   test, so "bad" or "and" in an answer counted as choosing a, b or d.
3. **Fast path**: the answer's final expression (:func:`.answers.final_expression`: the last ``\\boxed{}``,
   the only math span, or the whole answer when it has no math delimiters) is compared with the
   gold without math-verify when both are plain numbers, or when they are equal as normalised text.
4. **Beyond the limits**: an answer is wrong without math-verify when it holds a number of more
   than ``MAX_DIGITS`` digits written as a power tower or a factorial (``9^{9^{9}}``,
   ``10^{10^{10}}``, ``38827635!``; :func:`.answers.too_large`), whose evaluation is C code that runs for
   minutes, or brackets nested deeper than ``MAX_NESTING`` (:func:`.answers.nesting_depth`), whose parse
   takes time exponential in the depth (a 20-deep ``\\frac`` chain: about a minute).
5. **math-verify** (in a worker process, :mod:`.verifier`): gold parsed as ``$gold$``, the
   prediction read with LaTeX and expression extraction, ``verify(gold, prediction)`` (the
   original passed them swapped; verify is not symmetric).

Conventions (plain numbers are always decided by these; math-verify decides everything else):

- Numbers compare exactly; when either is a decimal, equal to 6 decimal places (math-verify's
  ``float_rounding``): 0.75 = 3/4 = ``\\frac{3}{4}``, 0.333333 = 1/3, but 0.33 != 1/3.
- Units are ignored, not converted: "5 cm", "5\\text{ cm}", "12 apples" read as 5 and 12 (so
  "5 mm" also matches a gold "5 cm").
- Degrees: 30°, ``30^\\circ``, "30 degrees" read as 30; no degree-radian conversion.
- Percentages: p% equals p% and also both p and p/100, in either direction (50% = 50 = 0.5; a
  side effect: 0.5% matches a gold 0.5).
- Intervals, sets, equations (``x = 2`` matches ``2``), inequalities: math-verify's rules.
- A gold that is a single letter of ``choices`` is a choice letter, so a gold "e" or "c" is read as
  option E or C (matched by a response "e" or ``\\boxed{c}``), not as Euler's number or a variable.
- A prose answer without math delimiters ("There are 12 in total") is read by math-verify's own
  extraction, which takes the number it finds ("3 or more" reads as 3).

**Time**: math-verify runs in a pool of worker processes (:mod:`.pool`), so each sample is bounded
by ``timeout`` seconds (plus 0.5 s grace) even when called off the main thread, where
math-verify's own ``signal.alarm`` timeouts raise. A sample over time gets reward 0 with error
``"timeout"``. Identical (gold, answer) pairs are judged once per call; each worker parses a gold
once (cached).

**Unparseable gold** (``on_bad_gold``; math-verify finds no expression in it, or it is blank): the
original gave every such sample 1.0, silently. Here it is counted in ``counts["bad_gold"]``, logged once per gold, and scored 0 (``"zero"``), 1
(``"one"``, the original's choice: with MM-Eureka's accuracy filter either value drops the
group), or 0 with ``error`` set (``"error"``). It never raises.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from mm_eureka_plugin.rewards.answers import (
    PlainNumber,
    answer_text,
    canonical,
    chosen_letter,
    final_expression,
    gold_letter,
    has_math_delimiters,
    is_prose,
    math_to_latex,
    nesting_depth,
    plain_number,
    strip_degrees,
    strip_unit,
    too_large,
)
from mm_eureka_plugin.rewards.pool import TIMEOUT, Outcome, WorkerPool, shared_pool
from mm_eureka_plugin.rewards.types import RewardResult, RewardSample

logger = logging.getLogger(__name__)

VERIFIER_TASK = "mm_eureka_plugin.rewards.verifier:check"
MAX_DIGITS = 100_000
"""Answers with a power or factorial of more digits than this are judged wrong unevaluated."""
MAX_NESTING = 10
"""Answers with brackets nested deeper than this are judged wrong unevaluated (real ones: < 6)."""


@dataclass(frozen=True)
class _Gold:
    label: str
    letter: str | None
    latex: str  # what math-verify parses
    canonical: str | None
    number: PlainNumber | None


def _prepare_gold(label: str, choices: str) -> _Gold:
    text = math_to_latex(label).strip()
    expression, _ = final_expression(text)
    canon = canonical(expression) if expression else None
    return _Gold(
        label=label,
        letter=gold_letter(text, choices),
        latex=text if has_math_delimiters(text) else f"${text}$",
        canonical=canon,
        number=plain_number(canon) if canon else None,
    )


def _fast_verdict(gold: _Gold, expression: str | None) -> bool | None:
    """True/False when decided without math-verify (equal text, or two plain numbers); else None."""
    if expression is None or gold.canonical is None:
        return None
    pred = canonical(expression)
    if pred == gold.canonical:
        return True
    number = plain_number(pred)
    if number is not None and gold.number is not None:
        return number.matches(gold.number)
    return None


def _attempts(text: str, expression: str | None, source: str) -> tuple[str, ...]:
    """What math-verify reads: the final expression as LaTeX, or, when there is none or it is
    prose ("There are 12 in total"), the whole answer with math-verify's own extraction."""
    if expression and not (source == "plain" and is_prose(expression)):
        return (f"${strip_unit(strip_degrees(expression.replace('$', ' '))).strip()}$",)
    return (text,)


def _beyond_limits(attempts: tuple[str, ...]) -> str | None:
    """``"too_large"`` or ``"too_deep"`` when an attempt is beyond the module's limits; else None."""
    if any(too_large(attempt, MAX_DIGITS) for attempt in attempts):
        return "too_large"
    if any(nesting_depth(attempt) > MAX_NESTING for attempt in attempts):
        return "too_deep"
    return None


def _default_workers() -> int:
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, available))


class AccuracyReward:
    """MM-Eureka accuracy: 1 if the answer in <answer>...</answer> equals the gold answer, else 0 (math-verify).

    ``timeout``: seconds per sample, bounded from outside in worker processes (works off the main
    thread). ``on_bad_gold``: "zero", "one" (MM-Eureka's choice) or "error" for a gold math-verify
    cannot parse. ``workers``: verifier processes (default min(4, CPUs)), shared by every accuracy
    reward of the process with the same ``workers``. ``max_answer_chars``: only the answer's last
    so many characters are read. ``worker_memory_mb``: address-space limit of each worker (None:
    none). ``choices``: the multiple-choice letters. See the module docstring for the rules.

    Result: ``reward = score = components["accuracy"]`` in {0, 1}; ``error`` set on a timeout,
    a crashed worker, or a bad gold under "error". Counters in :attr:`counts`.
    """

    uses_images = False

    def __init__(
        self,
        timeout: float = 5.0,
        on_bad_gold: Literal["zero", "one", "error"] = "zero",
        workers: int | None = None,
        max_answer_chars: int = 1000,
        worker_memory_mb: int | None = 2048,
        choices: str = "ABCDE",
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}.")
        if on_bad_gold not in ("zero", "one", "error"):
            raise ValueError(f"on_bad_gold must be 'zero', 'one' or 'error', got {on_bad_gold!r}.")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}.")
        if max_answer_chars < 1:
            raise ValueError(f"max_answer_chars must be >= 1, got {max_answer_chars}.")
        if worker_memory_mb is not None and worker_memory_mb < 256:
            raise ValueError(f"worker_memory_mb must be >= 256 (or None), got {worker_memory_mb}.")
        if not re.fullmatch(r"[A-Z]+", choices) or len(set(choices)) != len(choices):
            raise ValueError(f"choices must be distinct capital letters such as 'ABCDE', got {choices!r}.")
        self.timeout = float(timeout)
        self.on_bad_gold = on_bad_gold
        self.workers = workers or _default_workers()
        self.max_answer_chars = max_answer_chars
        self.worker_memory_mb = worker_memory_mb
        self.choices = choices
        self.counts: Counter[str] = Counter()
        """Samples by outcome: ``bad_gold``, ``timeout``, ``error``, ``too_large``, ``too_deep``, and
        ``symbolic`` (math-verify tasks run)."""
        self._lock = threading.Lock()
        self._logged_bad_golds: set[str] = set()

    def pool(self) -> WorkerPool:
        """The worker pool this reward's math-verify calls run in (shared, started on first use)."""
        return shared_pool(self.workers, self.worker_memory_mb, ("mm_eureka_plugin.rewards.verifier",))

    def __call__(self, samples: list[RewardSample]) -> list[RewardResult]:
        golds: dict[str, _Gold] = {}
        results: list[RewardResult | None] = [None] * len(samples)
        tasks: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        task_golds: dict[str, _Gold] = {}
        for i, sample in enumerate(samples):
            gold = golds.get(sample.label)
            if gold is None:
                gold = golds[sample.label] = _prepare_gold(sample.label, self.choices)
            text = math_to_latex(answer_text(sample.response, self.max_answer_chars))
            if gold.letter is not None:
                results[i] = _accuracy(float(chosen_letter(text, self.choices) == gold.letter))
                continue
            if not sample.label.strip():
                results[i] = _accuracy(*self._bad_gold(gold))
                continue
            if not text:
                results[i] = _accuracy(0.0)
                continue
            expression, source = final_expression(text)
            verdict = _fast_verdict(gold, expression)
            if verdict is not None:
                results[i] = _accuracy(float(verdict))
                continue
            attempts = _attempts(text, expression, source)
            beyond = _beyond_limits(attempts)
            if beyond is not None:
                with self._lock:
                    self.counts[beyond] += 1
                results[i] = _accuracy(0.0)
                continue
            key = (gold.latex, attempts)
            tasks.setdefault(key, []).append(i)
            task_golds[gold.latex] = gold
        if tasks:
            self._run_symbolic(tasks, task_golds, results)
        return results

    def check_gold(self, label: str) -> str | None:
        """Why samples of the gold answer ``label`` cannot be judged (empty, or math-verify finds no
        expression in it, or parsing it timed out); None when they can (a choice letter or a plain
        number needs no parse)."""
        gold = _prepare_gold(label, self.choices)
        if gold.letter is not None or gold.number is not None:
            return None
        if not label.strip():
            return "the gold answer is empty"
        try:
            (outcome,) = self.pool().run(VERIFIER_TASK, [(gold.latex, ())], self.timeout)
        except RuntimeError as exc:
            return f"the verifier is unavailable: {exc}"
        if outcome.error is not None:
            return f"math-verify failed on the gold answer {label!r}: {outcome.error}"
        return f"math-verify cannot parse the gold answer {label!r}" if outcome.value is None else None

    def _run_symbolic(
        self,
        tasks: dict[tuple[str, tuple[str, ...]], list[int]],
        golds: dict[str, _Gold],
        results: list[RewardResult | None],
    ) -> None:
        with self._lock:
            self.counts["symbolic"] += len(tasks)
        try:
            outcomes = self.pool().run(VERIFIER_TASK, list(tasks), self.timeout)
        except RuntimeError as exc:
            logger.error("accuracy reward: math-verify workers unavailable: %s", exc)
            outcomes = [Outcome(error=f"verifier unavailable: {exc}")] * len(tasks)
        for (gold_latex, attempts), outcome, indices in zip(tasks, outcomes, tasks.values()):
            if outcome.error is not None:
                with self._lock:
                    self.counts["timeout" if outcome.error == TIMEOUT else "error"] += len(indices)
                logger.info("accuracy reward %s on gold %r, answer %r", outcome.error, gold_latex, attempts[-1][-200:])
                value, error = 0.0, outcome.error
            elif outcome.value is None:
                value, error = self._bad_gold(golds[gold_latex], len(indices))
            else:
                value, error = float(outcome.value), None
            for i in indices:
                results[i] = _accuracy(value, error)

    def _bad_gold(self, gold: _Gold, samples: int = 1) -> tuple[float, str | None]:
        """The (accuracy, error) ``on_bad_gold`` gives; counted, and logged once per gold."""
        with self._lock:
            self.counts["bad_gold"] += samples
            first = gold.label not in self._logged_bad_golds
            self._logged_bad_golds.add(gold.label)
        if first:
            logger.warning(
                "accuracy reward: math-verify cannot parse the gold answer %r; scoring its samples by "
                "on_bad_gold=%r. Fix the data row.",
                gold.label,
                self.on_bad_gold,
            )
        if self.on_bad_gold == "one":
            return 1.0, None
        return 0.0, (f"unparseable gold answer {gold.label!r}" if self.on_bad_gold == "error" else None)


def _accuracy(value: float, error: str | None = None) -> RewardResult:
    return RewardResult(reward=value, components={"accuracy": value}, score=value, error=error)
