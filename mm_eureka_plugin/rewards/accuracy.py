"""MM-Eureka's accuracy reward (arXiv 2503.07365) on math-verify, with the original's bugs fixed.

How one sample (``response``, gold ``label``) is judged:

1. **Answer text** (:func:`answer_text`): the inside of the last ``<answer>...</answer>`` span,
   newlines included (the original's regex lacked DOTALL, and kept the tags, which stops
   math-verify from reading a bare ``<answer>3/4</answer>``); else everything after the last
   ``<answer>``; else everything after the last ``</think>``; else the whole response.
   Only its last ``max_answer_chars`` characters are read. Unicode math (√ π × − ÷ ≤ ≥ ≠ ± ° ∞ ½ ²
   ...) and the bare words sqrt and pi are rewritten as LaTeX (:func:`math_to_latex`).
2. **Choice letters**: a gold that is a letter of ``choices`` (also written "(B)", "B.", "option B",
   ``\\boxed{B}``, "The answer is B") is compared with the letter the answer picks
   (:func:`chosen_letter`), read as a standalone token: the original's fallback was a substring
   test, so "bad" or "and" in an answer counted as choosing a, b or d.
3. **Fast path**: the answer's final expression (:func:`final_expression`: the last ``\\boxed{}``,
   the only math span, or the whole answer when it has no math delimiters) is compared with the
   gold without math-verify when both are plain numbers, or when they are equal as normalised text.
4. **Beyond the limits**: an answer is wrong without math-verify when it holds a number of more
   than ``MAX_DIGITS`` digits written as a power tower or a factorial (``9^{9^{9}}``,
   ``10^{10^{10}}``, ``38827635!``; :func:`too_large`), whose evaluation is C code that runs for
   minutes, or brackets nested deeper than ``MAX_NESTING`` (:func:`nesting_depth`), whose parse
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
import math
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Literal

from mm_eureka_plugin.rewards.pool import TIMEOUT, Outcome, WorkerPool, shared_pool
from mm_eureka_plugin.rewards.types import RewardResult, RewardSample

logger = logging.getLogger(__name__)

VERIFIER_TASK = "mm_eureka_plugin.rewards.verifier:check"
MAX_PLAIN_EXPRESSION = 100
"""A math-delimiter-free answer longer than this is left to math-verify's own extraction."""
MAX_DIGITS = 100_000
"""Answers with a power or factorial of more digits than this are judged wrong unevaluated."""
MAX_NESTING = 10
"""Answers with brackets nested deeper than this are judged wrong unevaluated (real ones: < 6)."""

# ---------------------------------------------------------------------------------------------
# Answer text


def answer_text(response: str, max_chars: int | None = None) -> str:
    """The part of ``response`` the answer is read from (see the module docstring), stripped of
    answer tags; the last ``max_chars`` characters of it when given."""
    end = response.rfind("</answer>")
    start = response.rfind("<answer>", 0, end) if end >= 0 else -1
    if start >= 0:
        text = response[start + len("<answer>") : end]
    elif "<answer>" in response:
        text = response[response.rfind("<answer>") + len("<answer>") :]
    elif "</think>" in response:
        text = response[response.rfind("</think>") + len("</think>") :]
    else:
        text = response
    text = text.replace("<answer>", " ").replace("</answer>", " ")
    if max_chars is not None and len(text) > max_chars:
        text = text[-max_chars:]
    return text.strip()


_UNICODE_LATEX = {
    "\u2212": "-",  # minus sign
    "×": r"\times ",
    "·": r"\cdot ",
    "⋅": r"\cdot ",
    "÷": r"\div ",
    "π": r"\pi ",
    "∞": r"\infty ",
    "≤": r"\le ",
    "⩽": r"\le ",
    "≥": r"\ge ",
    "⩾": r"\ge ",
    "≠": r"\ne ",
    "±": r"\pm ",
    "°": r"^\circ ",
    "∪": r"\cup ",
    "∩": r"\cap ",
    "∈": r"\in ",
    "∅": r"\emptyset ",
    "∠": r"\angle ",
    "α": r"\alpha ",
    "β": r"\beta ",
    "γ": r"\gamma ",
    "θ": r"\theta ",
    "φ": r"\varphi ",
    "⁄": "/",
    "½": r"\frac{1}{2}",
    "⅓": r"\frac{1}{3}",
    "⅔": r"\frac{2}{3}",
    "¼": r"\frac{1}{4}",
    "¾": r"\frac{3}{4}",
    "⅕": r"\frac{1}{5}",
    "⅛": r"\frac{1}{8}",
    "⁰": "^{0}",
    "¹": "^{1}",
    "²": "^{2}",
    "³": "^{3}",
}
_UNICODE_CHARS = re.compile("|".join(map(re.escape, _UNICODE_LATEX)))
_ROOT = re.compile(r"([√∛∜]|(?<![\\A-Za-z])sqrt)\s*(\d+(?:\.\d+)?|[A-Za-z]|\([^()]*\)|\{[^{}]*\})?")
_ROOT_INDEX = {"√": "", "sqrt": "", "∛": "[3]", "∜": "[4]"}
_BARE_PI = re.compile(r"(?<![\\A-Za-z])pi(?![A-Za-z])")


def _root(match: re.Match) -> str:
    index = _ROOT_INDEX[match[1]]
    radicand = match[2]
    if radicand is None:
        return rf"\sqrt{index} "
    if radicand[0] in "({":
        radicand = radicand[1:-1]
    return rf"\sqrt{index}{{{radicand}}}"


def math_to_latex(text: str) -> str:
    """``text`` with Unicode math symbols and the bare words ``sqrt`` and ``pi`` written as LaTeX
    (√3 and sqrt(3) -> ``\\sqrt{3}``, π and pi -> ``\\pi``, ½ -> ``\\frac{1}{2}``, ...)."""
    text = _BARE_PI.sub(r"\\pi ", _ROOT.sub(_root, text))
    return _UNICODE_CHARS.sub(lambda m: _UNICODE_LATEX[m[0]], text)


# ---------------------------------------------------------------------------------------------
# Final expression and normalisation

_LEAD_IN = re.compile(
    r"^(?:(?:so|thus|therefore|hence)\b[\s,]*)?(?:the\s+)?(?:(?:final|correct)\s+)?(?:answer|option|choice)\b"
    r"(?:\s+is)?\s*[:：]?\s*(?:(?:option|choice)\b\s*)?",
    re.IGNORECASE,
)
_MATH_DELIMITER = re.compile(r"\$|\\\(|\\\[|\\boxed")
_SINGLE_MATH = re.compile(
    r"\$\$([^$]+)\$\$|\$([^$]+)\$|\\\(((?:(?!\\[()]).)+)\\\)|\\\[((?:(?!\\[\[\]]).)+)\\\]", re.DOTALL
)


def strip_lead_in(text: str) -> str:
    """``text`` without a leading "The answer is"/"Answer:"/"Option" and trailing full stops."""
    return _LEAD_IN.sub("", text.strip()).strip().rstrip(".。").strip()


def boxed_contents(text: str) -> list[str]:
    """The contents of every ``\\boxed{...}`` in ``text`` (balanced braces), in order."""
    contents = []
    start = text.find(r"\boxed")
    while start >= 0:
        i = start + len(r"\boxed")
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    contents.append(text[i + 1 : j])
                    break
        start = text.find(r"\boxed", i)
    return contents


def final_expression(text: str) -> tuple[str | None, str]:
    """The answer's final expression and where it came from: ``"boxed"`` (the last
    ``\\boxed{}``), ``"math"`` (the answer is one math span), ``"plain"`` (a short answer with no
    math delimiters, lead-in removed), or ``(None, "none")``."""
    boxed = boxed_contents(text)
    if boxed:
        return boxed[-1].strip(), "boxed"
    body = strip_lead_in(text)
    single = _SINGLE_MATH.fullmatch(body)
    if single:
        return next(g for g in single.groups() if g is not None).strip(), "math"
    if body and not _MATH_DELIMITER.search(body) and len(body) <= MAX_PLAIN_EXPRESSION:
        return body, "plain"
    return None, "none"


_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\(?:left|right|displaystyle)(?![A-Za-z])|\\[,;:! ]|~")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree")
_PERCENT_WORD = re.compile(r"(\d)\s*(?:percent|per cent|pct)\b", re.IGNORECASE)
_NUMBER = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?|[-+]?\\frac\{\d+\}\{\d+\}"
_UNIT_WORD = r"[A-Za-z]+(?:\^\{?[23]\}?)?"
_WITH_UNIT = re.compile(
    rf"(?P<number>(?:{_NUMBER})%?)(?P<gap>\s*)(?P<unit>{_UNIT_WORD}(?:\s*/\s*{_UNIT_WORD})?(?:\s+[A-Za-z]+){{0,2}})"
)
_NOT_UNITS = frozenset(
    "or and to than more less not times plus minus over of is are x i e pi sqrt frac le ge ne pm cdot div".split()
)
_ATTACHED_UNITS = frozenset("mm cm dm m km mg g kg ms s min h hr hrs ml cl dl l".split())


def strip_unit(expr: str) -> str:
    """``expr`` without a unit after a leading number ("5 cm" -> "5", "12 apples" -> "12"); a unit
    written without a space must be a common SI one ("5cm", not "3x")."""
    match = _WITH_UNIT.fullmatch(expr.strip())
    if not match:
        return expr
    words = [w.split("^")[0].lower() for w in re.split(r"[\s/]+", match["unit"])]
    if any(w in _NOT_UNITS for w in words):
        return expr
    if not match["gap"] and (len(words) > 1 or words[0] not in _ATTACHED_UNITS):
        return expr
    return match["number"]


def canonical(expr: str) -> str:
    """``expr`` normalised for a text comparison: no math delimiters, ``\\text{}`` wrappers,
    spacing commands, degree marks, units or whitespace; ``\\dfrac`` as ``\\frac``, ``\\%`` as %."""
    text = _TEXT_COMMAND.sub(r"\1", expr).replace("$", " ").replace("\\%", "%")
    text = _SPACING.sub(" ", text).replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac")
    text = _PERCENT_WORD.sub(r"\1%", _DEGREES.sub(" ", text))
    text = strip_unit(text.strip())
    return "".join(text.split()).rstrip(".")


@dataclass(frozen=True)
class PlainNumber:
    """A number written plainly: an integer, a decimal, ``a/b`` or ``\\frac{a}{b}``, maybe a percentage."""

    value: Fraction
    decimal: bool
    percent: bool

    def matches(self, other: PlainNumber) -> bool:
        """Equal under the module's conventions (6 decimals when a decimal is involved; p% = p = p/100)."""
        rounded = self.decimal or other.decimal
        for a in self.readings():
            for b in other.readings():
                if a == b or (rounded and round(a, 6) == round(b, 6)):
                    return True
        return False

    def readings(self) -> tuple[Fraction, ...]:
        return (self.value, self.value / 100) if self.percent else (self.value,)


_PLAIN_NUMBER = re.compile(
    r"(?P<sign>[-+]?)(?:(?P<decimal>\d+\.\d*|\.\d+)|(?P<num>\d+)/(?P<den>\d+)|\\frac\{(?P<fnum>-?\d+)\}\{(?P<fden>\d+)\}"
    r"|(?P<integer>\d+))(?P<percent>%?)"
)


def plain_number(text: str) -> PlainNumber | None:
    """The number ``text`` (a :func:`canonical` string) is, or None if it is not a plain number."""
    match = _PLAIN_NUMBER.fullmatch(text)
    if not match:
        return None
    if match["decimal"] or match["integer"]:
        value = Fraction(match["decimal"] or match["integer"])
    else:
        denominator = int(match["den"] or match["fden"])
        if denominator == 0:
            return None
        value = Fraction(int(match["num"] or match["fnum"]), denominator)
    if match["sign"] == "-":
        value = -value
    return PlainNumber(value, bool(match["decimal"]), bool(match["percent"]))


_NUMBER_TOWER = re.compile(r"(?<![\d.])\d++(?:\.\d++)?(?:\s*+(?:\^|\*\*)\s*+[{(]?\s*+\d++(?:\.\d++)?)++")
_FACTORIAL = re.compile(r"(?<!\d)(\d++)\s*+!")


def _tower_digits(numbers: list[float]) -> float:
    """About how many digits the largest power of the tower ``a^(b^(c^...))`` has: the most of
    its sub-towers ``c^...``, ``b^(c^...)``, ... (``inf`` when too many for a float)."""
    digits = math.log10(numbers[-1]) if numbers[-1] > 0 else 0.0
    largest = digits
    for base in reversed(numbers[:-1]):
        exponent = 10.0**digits if digits < 300 else math.inf
        digits = exponent * math.log10(base) if base > 1 else 0.0
        largest = max(largest, digits)
    return largest


def too_large(text: str) -> bool:
    """Whether ``text`` writes a number of more than :data:`MAX_DIGITS` digits as a tower of powers
    of numbers (``9^{9^{9}}``, ``10**10**6``) or a factorial (``100000!``)."""
    for match in _FACTORIAL.finditer(text):
        n = int(match[1]) if len(match[1]) < 12 else math.inf
        if n > 1 and (n == math.inf or math.lgamma(n + 1) / math.log(10) > MAX_DIGITS):
            return True
    for match in _NUMBER_TOWER.finditer(text):
        numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", match[0])]
        if _tower_digits(numbers) > MAX_DIGITS:
            return True
    return False


def nesting_depth(text: str) -> int:
    """How deeply ``( [ {`` brackets nest in ``text`` (closing brackets without an opener ignored)."""
    depth = deepest = 0
    for bracket in re.findall(r"[(\[{)\]}]", text):
        if bracket in "([{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


# ---------------------------------------------------------------------------------------------
# Choice letters


@dataclass(frozen=True)
class _LetterPatterns:
    whole: re.Pattern
    answer: re.Pattern
    option: re.Pattern
    parenthesised: re.Pattern
    standalone: re.Pattern
    more: re.Pattern


@lru_cache(maxsize=8)
def _letter_patterns(choices: str) -> _LetterPatterns:
    upper = f"[{choices}]"
    anycase = f"[{choices}{choices.lower()}]"
    # After an anchor: "(b)", "B" as a token, or a lowercase letter that ends the phrase ("is b.").
    picked = rf"(?:[(\[]({anycase})[)\]]|({upper})(?![A-Za-z0-9])|({anycase})(?=\s*(?:[.,;!?]|$)))"
    return _LetterPatterns(
        whole=re.compile(rf"[(\[]?\s*({anycase})\s*[)\]]?\s*[.:]?"),
        answer=re.compile(
            rf"(?i:answer)(?:\s+(?i:is|would be|should be|must be))?\s*[:：]?\s*(?:(?i:option|choice)\s*)?{picked}"
            rf"|(?<![A-Za-z0-9\\])({upper})\s+(?i:is)\s+(?:(?i:the)\s+)?(?i:correct|right|answer)\b"
        ),
        option=re.compile(rf"(?i:option|choice)\s*{picked}"),
        parenthesised=re.compile(rf"[(\[]({anycase})[)\]]"),
        standalone=re.compile(rf"(?<![A-Za-z0-9\\])({upper})(?![A-Za-z0-9])"),
        more=re.compile(rf"\s*(?:[,/&]|(?i:or|and)\b)\s*(?:[(\[]({anycase})[)\]]|({upper})(?![A-Za-z0-9]))"),
    )


def _plain_text(text: str) -> str:
    for _ in range(3):  # nested wrappers: \textbf{\text{B}}
        text = _TEXT_COMMAND.sub(r"\1", text)
    for token in ("$", "**", r"\(", r"\)", r"\[", r"\]"):
        text = text.replace(token, " ")
    return text


def _whole_letter(text: str, patterns: _LetterPatterns) -> str | None:
    match = patterns.whole.fullmatch(strip_lead_in(_plain_text(text)))
    return match[1].upper() if match else None


def _unique(letters: set[str]) -> str | None:
    return next(iter(letters)) if len(letters) == 1 else None


_AFTER_LETTER_A = frozenset("or and is was fits works holds matches satisfies seems must should would could".split())


def _is_standalone_choice(text: str, match: re.Match) -> bool:
    after, before = text[match.end() :], text[: match.start()].rstrip()
    next_word = re.match(r"\s+([a-z]+)", after)
    if match[1] == "A" and next_word and next_word[1] not in _AFTER_LETTER_A:  # the article: "A triangle"
        return False
    if re.match(r"\s*[=<>+\-*/^_']", after) or before.endswith(tuple("=<>+-*/^")):  # a variable
        return False
    return not re.search(r"\\[A-Za-z]+$", before)  # \angle A


def gold_letter(gold: str, choices: str = "ABCDE") -> str | None:
    """The choice letter ``gold`` is ("B", "(b)", "B.", "option B", ``\\boxed{B}``, "The answer
    is B"), upper-cased; None if it is not one."""
    patterns = _letter_patterns(choices)
    boxed = boxed_contents(gold)
    return _whole_letter(boxed[-1] if boxed else gold, patterns)


def chosen_letter(text: str, choices: str = "ABCDE") -> str | None:
    """The choice letter an answer picks, upper-cased; None when it picks none or several.

    Tried in order, the first rule that finds any letter decides (several distinct letters under
    that rule: None): letters in ``\\boxed{}``; the whole answer being a letter ("B", "(b)", "The
    answer is B."); "answer is/answer: X" and "X is correct"; "option/choice X"; "(X)" (the last
    three also read the letters listed after X: "B or C", "A, B"); finally
    capital letters standing alone as words, except the article "A" before a lowercase word and
    letters used as variables (next to = + - ..., after ``\\angle``). Letters inside words never count.
    """
    patterns = _letter_patterns(choices)
    boxed = {letter for content in boxed_contents(text) if (letter := _whole_letter(content, patterns))}
    if boxed:
        return _unique(boxed)
    body = _plain_text(text)
    whole = _whole_letter(body, patterns)
    if whole:
        return whole
    for pattern in (patterns.answer, patterns.option, patterns.parenthesised):
        found = set()
        for match in pattern.finditer(body):
            found.add(next(g for g in match.groups() if g).upper())
            while more := patterns.more.match(body, match.end()):  # "B or C", "A, B"
                found.add(next(g for g in more.groups() if g).upper())
                match = more
        if found:
            return _unique(found)
    return _unique({m[1] for m in patterns.standalone.finditer(body) if _is_standalone_choice(body, m)})


# ---------------------------------------------------------------------------------------------
# The reward


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
        latex=text if _MATH_DELIMITER.search(text) else f"${text}$",
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


_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}(?![A-Za-z])")
_MATH_WORDS = frozenset(
    "or and pi sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg exp lim max min mod gcd lcm".split()
)
_SHORT_WORDS = frozenset("is in so it no of to be we at on as by an the are was not has for but can".split())


def is_prose(expression: str) -> bool:
    """Whether ``expression`` holds English words (not math like "3x", "2ab", "x=1 or x=2", "AB")."""
    for word in _WORD.findall(expression):
        lower = word.lower()
        if lower not in _MATH_WORDS and (len(word) >= 4 or lower in _SHORT_WORDS):
            return True
    return False


def _attempts(text: str, expression: str | None, source: str) -> tuple[str, ...]:
    """What math-verify reads: the final expression as LaTeX, or, when there is none or it is
    prose ("There are 12 in total"), the whole answer with math-verify's own extraction."""
    if expression and not (source == "plain" and is_prose(expression)):
        return (f"${strip_unit(_DEGREES.sub(' ', expression.replace('$', ' '))).strip()}$",)
    return (text,)


def _beyond_limits(attempts: tuple[str, ...]) -> str | None:
    """``"too_large"`` or ``"too_deep"`` when an attempt is beyond the module's limits; else None."""
    if any(too_large(attempt) for attempt in attempts):
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
