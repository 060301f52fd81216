"""The symbolic check, run inside a verifier worker process: math-verify's ``parse`` and ``verify``.

Imported only by the workers of :mod:`mm_eureka_plugin.rewards.pool` (and tests), so the trainer
process never loads sympy. math-verify's own signal-based timeouts are switched off here: the
pool bounds each call from outside, which also works where signals cannot (C code).
"""

from __future__ import annotations

import logging
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

# With its timeouts off, math-verify warns once per process that the caller must bound time: we do.
logging.getLogger("math_verify").setLevel(logging.ERROR)

PREDICTION_EXTRACTION = (LatexExtractionConfig(), ExprExtractionConfig())
"""How a prediction is read: LaTeX (boxed first), then plain expressions and numbers. Choice
letters never reach math-verify (the accuracy reward decides them), so there is no string config."""


@lru_cache(maxsize=1024)
def parse_gold(gold: str) -> tuple:
    """math-verify's parse of a gold answer (LaTeX with its delimiters); cached, so once per worker."""
    return tuple(parse(gold, parsing_timeout=None))


def check(gold: str, attempts: tuple[str, ...]) -> bool | None:
    """Whether any attempt's parse verifies against the gold's; None if the gold cannot be parsed
    (math-verify finds no expression in it: nothing, or only its raw-text fallback)."""
    gold_parsed = list(parse_gold(gold))
    if all(isinstance(g, str) for g in gold_parsed):
        return None
    for text in attempts:
        predicted = parse(text, extraction_config=PREDICTION_EXTRACTION, parsing_timeout=None)
        if predicted and verify(gold_parsed, predicted, timeout_seconds=None):
            return True
    return False
