"""Reading a response's answer as text: the answer span, LaTeX for Unicode math, the final
expression, normalisation, plain numbers, size and nesting, prose, and multiple-choice letters.

Pure text handling, no math-verify: :mod:`.accuracy` decides with these what math-verify reads and
what it need not be asked.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

MAX_PLAIN_EXPRESSION = 100
"""A math-delimiter-free answer longer than this has no :func:`final_expression`."""

# ---------------------------------------------------------------------------------------------
# Answer text


def answer_text(response: str, max_chars: int | None = None) -> str:
    """The part of ``response`` the answer is read from, stripped of answer tags; the last
    ``max_chars`` characters of it when given.

    That is the inside of the last ``<answer>...</answer>`` span, newlines included; else
    everything after the last ``<answer>``; else everything after the last ``</think>``; else the
    whole response.
    """
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


_FIRST_ANSWER_SPAN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def mmk12_eval_answer(response: str) -> str:
    """The answer MM-Eureka's MMK12 evaluation hands its judge: the inside of the *first*
    ``<answer>...</answer>`` span, stripped; else the contents of the last ``\\boxed{...}``
    (balanced braces, no space after ``\\boxed``; a ``\\boxed`` inside another is part of it),
    stripped; else the whole response, unchanged.

    As ``build_zh_exam_k12_gpt4_prompt`` in MM-EUREKA's ``eval/mmk12/extract_calculate.py``
    (``re.search(r"<answer>(.*?)</answer>", response, re.DOTALL)``, then the last match of a
    recursive ``regex`` pattern for ``\\boxed{...}``). Unlike :func:`answer_text` (what the
    accuracy reward reads), it takes the first answer span, not the last, and never reads what
    follows ``</think>``.
    """
    match = _FIRST_ANSWER_SPAN.search(response)
    if match:
        return match[1].strip()
    boxed = _top_level_boxed(response)
    return boxed[-1].strip() if boxed else response


def _top_level_boxed(text: str) -> list[str]:
    """The contents of each ``\\boxed{...}`` with balanced braces, scanning left to right and
    resuming after each match (so a nested ``\\boxed`` is not listed apart); an unclosed one is
    skipped and the scan resumes just after its ``\\boxed{``. The matches of the paper's regex."""
    found = []
    start = text.find("\\boxed{")
    while start >= 0:
        open_at = start + len("\\boxed")
        depth, end = 0, -1
        for j in range(open_at, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                end = j
                break
        if end >= 0:
            found.append(text[open_at + 1 : end])
            start = text.find("\\boxed{", end + 1)
        else:
            start = text.find("\\boxed{", start + 1)
    return found


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
# Final expression, normalisation, plain numbers, size

_LEAD_IN = re.compile(
    r"^(?:(?:so|thus|therefore|hence)\b[\s,]*)?(?:the\s+)?(?:(?:final|correct)\s+)?(?:answer|option|choice)\b"
    r"(?:\s+is)?\s*[:：]?\s*(?:(?:option|choice)\b\s*)?",
    re.IGNORECASE,
)
_MATH_DELIMITER = re.compile(r"\$|\\\(|\\\[|\\boxed")
_SINGLE_MATH = re.compile(
    r"\$\$([^$]+)\$\$|\$([^$]+)\$|\\\(((?:(?!\\[()]).)+)\\\)|\\\[((?:(?!\\[\[\]]).)+)\\\]", re.DOTALL
)


def has_math_delimiters(text: str) -> bool:
    """Whether ``text`` holds ``$``, ``\\(``, ``\\[`` or ``\\boxed``."""
    return _MATH_DELIMITER.search(text) is not None


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
    if body and not has_math_delimiters(body) and len(body) <= MAX_PLAIN_EXPRESSION:
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


def strip_degrees(text: str) -> str:
    """``text`` with each degree mark (``^\\circ``, ``^{\\circ}``, ``\\circ``, ``\\degree``) as a space."""
    return _DEGREES.sub(" ", text)


def canonical(expr: str) -> str:
    """``expr`` normalised for a text comparison: no math delimiters, ``\\text{}`` wrappers,
    spacing commands, degree marks, units or whitespace; ``\\dfrac`` as ``\\frac``, ``\\%`` as %."""
    text = _TEXT_COMMAND.sub(r"\1", expr).replace("$", " ").replace("\\%", "%")
    text = _SPACING.sub(" ", text).replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac")
    text = _PERCENT_WORD.sub(r"\1%", strip_degrees(text))
    text = strip_unit(text.strip())
    return "".join(text.split()).rstrip(".")


@dataclass(frozen=True)
class PlainNumber:
    """A number written plainly: an integer, a decimal, ``a/b`` or ``\\frac{a}{b}``, maybe a percentage."""

    value: Fraction
    decimal: bool
    percent: bool

    def matches(self, other: PlainNumber) -> bool:
        """Equal exactly, or to 6 decimal places when either is a decimal; p% also reads as p and p/100."""
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


def too_large(text: str, max_digits: int) -> bool:
    """Whether ``text`` writes a number of more than ``max_digits`` digits as a tower of powers
    of numbers (``9^{9^{9}}``, ``10**10**6``) or a factorial (``100000!``)."""
    for match in _FACTORIAL.finditer(text):
        n = int(match[1]) if len(match[1]) < 12 else math.inf
        if n > 1 and (n == math.inf or math.lgamma(n + 1) / math.log(10) > max_digits):
            return True
    for match in _NUMBER_TOWER.finditer(text):
        numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", match[0])]
        if _tower_digits(numbers) > max_digits:
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
# Prose

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
