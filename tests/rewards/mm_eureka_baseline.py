"""MM-Eureka's accuracy reward as its code computes it, and agreement with the labelled corpus.

:func:`baseline_accuracy` follows REFERENCE.md section 1: the answer span is the first
``<answer>...</answer>`` match *including its tags* and without DOTALL, else everything after the
last ``<answer>``; the gold is parsed as ``$gold$``; an unparseable gold gives 1.0; the prediction
is parsed with String, LaTeX and Expr extraction; ``verify(prediction, gold)`` (the original's
argument order); then the letter fallback: 1 if the gold's letter (a-d) is a substring of the
answer and no other of a-d is; any exception gives 0. math-verify keeps its own signal timeouts,
so this runs on a process's main thread: here, in :class:`WorkerPool` workers, whose hard
deadline (which the signal cannot enforce on C code) counts as 0.

Run ``.venv/bin/python tests/rewards/mm_eureka_baseline.py`` for the agreement table of this
baseline and of :class:`AccuracyReward` on ``data/accuracy_corpus.jsonl``.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

CORPUS = Path(__file__).parent / "data" / "accuracy_corpus.jsonl"
CHOICES = "abcd"
TASK = "mm_eureka_baseline:baseline_accuracy"


def baseline_accuracy(response: str, gold: str) -> float:
    """MM-Eureka's accuracy of ``response`` against ``gold`` (main thread only: math-verify uses signals)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify

    try:
        span = re.search(r"<answer>.*?</answer>", response)
        content = span.group(0) if span else response.split("<answer>")[-1]
        gold_parsed = parse(f"${gold}$")
        if not gold_parsed:
            return 1.0
        predicted = parse(
            content, extraction_config=[StringExtractionConfig(), LatexExtractionConfig(), ExprExtractionConfig()]
        )
        if verify(predicted, gold_parsed):
            return 1.0
        inner = re.search(r"<answer>(.*?)</answer>", response)
        answer = (inner.group(1) if inner else content).replace("<answer>", "").replace("</answer>", "").lower()
        for item in gold_parsed:
            letter = str(item).lower()
            if letter in CHOICES and letter in answer and all(c not in answer for c in CHOICES if c != letter):
                return 1.0
        return 0.0
    except Exception:
        return 0.0


def load_corpus(path: Path = CORPUS) -> list[dict]:
    """The labelled cases: ``response``, ``gold``, ``expected`` (0 or 1), ``category``."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def baseline_scores(cases: list[dict], timeout: float = 5.0) -> list[float]:
    """:func:`baseline_accuracy` of every case, each in a worker process within ``timeout`` seconds."""
    from mm_eureka_plugin.rewards.pool import WorkerPool

    pool = WorkerPool(size=2, preload=("mm_eureka_baseline", "math_verify"))
    try:
        outcomes = pool.run(TASK, [(c["response"], c["gold"]) for c in cases], timeout)
    finally:
        pool.close()
    return [0.0 if o.error is not None else o.value for o in outcomes]


def our_scores(cases: list[dict], reward) -> list[float]:
    """``reward``'s accuracy of every case, in one call."""
    from mm_eureka_plugin.rewards import RewardSample

    results = reward([RewardSample(response=c["response"], label=c["gold"]) for c in cases])
    return [r.reward for r in results]


def agreement(cases: list[dict], scores: list[float]) -> dict[str, tuple[int, int]]:
    """Per category and ``"all"``: (cases whose score equals the label, cases)."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case, score in zip(cases, scores, strict=True):
        for key in (case["category"], "all"):
            table[key][0] += int(score == case["expected"])
            table[key][1] += 1
    return {key: (hits, total) for key, (hits, total) in table.items()}


def main() -> None:
    from mm_eureka_plugin.rewards import AccuracyReward

    cases = load_corpus()
    ours = agreement(cases, our_scores(cases, AccuracyReward()))
    base = agreement(cases, baseline_scores(cases))
    print(f"{'category':<18}{'cases':>6}{'ours':>8}{'baseline':>10}")
    for key in sorted(ours, key=lambda k: (k == "all", k)):
        total = ours[key][1]
        print(f"{key:<18}{total:>6}{ours[key][0]:>8}{base[key][0]:>10}")
    o, b, n = ours["all"][0], base["all"][0], ours["all"][1]
    print(f"agreement: ours {o}/{n} = {o / n:.3f}, baseline {b}/{n} = {b / n:.3f}")


if __name__ == "__main__":
    sys.exit(main())
