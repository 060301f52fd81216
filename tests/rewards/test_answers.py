"""Reading answers as text: the answer span, LaTeX, final expression, units, numbers, size, prose, letters."""

from __future__ import annotations

import time

import pytest

from mm_eureka_plugin.rewards.accuracy import MAX_DIGITS
from mm_eureka_plugin.rewards.answers import (
    answer_text,
    chosen_letter,
    final_expression,
    gold_letter,
    is_prose,
    math_to_latex,
    nesting_depth,
    plain_number,
    strip_unit,
    too_large,
)

# --- the answer span and its LaTeX ---------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<think>t</think><answer>\n5\n</answer>", "5"),  # newlines inside the span
        ("<answer>1</answer> then <answer>2</answer>", "2"),  # the last complete span
        ("<think>t</think><answer> 7 and more", "7 and more"),  # no closing tag
        ("<think>maybe 3</think> so 4", "so 4"),  # no answer tags: after </think>
        ("just 9", "just 9"),
    ],
)
def test_answer_text_picks_the_span(response, expected):
    assert answer_text(response) == expected


def test_answer_text_keeps_only_the_last_characters():
    assert answer_text("<answer>" + "x" * 50 + "tail</answer>", max_chars=4) == "tail"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("√3", r"\sqrt{3}"),
        ("2√(x+1)", r"2\sqrt{x+1}"),
        ("sqrt(2)", r"\sqrt{2}"),
        ("2 pi", r"2 \pi "),
        ("spin", "spin"),
        ("−5 × 3 ≤ 1", r"-5 \times  3 \le  1"),
        ("¾", r"\frac{3}{4}"),
        ("30°", r"30^\circ "),
        ("x²", "x^{2}"),
    ],
)
def test_math_to_latex(text, expected):
    assert math_to_latex(text) == expected


# --- the final expression, units, plain numbers, prose --------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so $\boxed{1}$ or $\boxed{\frac{1}{2}}$", (r"\frac{1}{2}", "boxed")),
        ("The answer is $x = 2$.", ("x = 2", "math")),
        ("Answer: 12 apples", ("12 apples", "plain")),
        ("$1$ and $2$", (None, "none")),
        ("", (None, "none")),
    ],
)
def test_final_expression(text, expected):
    assert final_expression(text) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("5 cm", "5"),
        ("12 apples", "12"),
        ("20 m/s", "20"),
        ("5cm", "5"),
        ("10 cm^2", "10"),
        ("3x", "3x"),  # attached: only common SI units
        ("2 pi", "2 pi"),
        ("3 or more", "3 or more"),
        ("x cm", "x cm"),
    ],
)
def test_strip_unit(expr, expected):
    assert strip_unit(expr) == expected


def test_is_prose():
    assert is_prose("There are 12 in total")
    assert is_prose("3 or more")
    assert not is_prose("x=1 or x=2")
    assert not is_prose("2ab + AB")
    assert not is_prose(r"\sin x + \cos x")


def test_plain_numbers_follow_the_documented_conventions():
    def same(a: str, b: str) -> bool:
        return plain_number(a).matches(plain_number(b))

    assert same("0.75", r"\frac{3}{4}") and same("3/4", "0.75") and same("0.3333333", "1/3")
    assert not same("0.33", "1/3") and not same("0.67", "2/3")
    assert same("50%", "50") and same("50%", "0.5") and same("0.5", "0.5%")
    assert not same("50%", "0.05")
    assert same("-1/2", r"\frac{-1}{2}")
    assert plain_number("1/0") is None and plain_number("2x") is None


# --- choice letters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "letter"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("option B", "B"),
        (r"\boxed{B}", "B"),
        ("The answer is B", "B"),
        (r"$\text{C}$", "C"),
        ("12", None),
        ("AB", None),
        ("F", None),
    ],
)
def test_gold_letter(gold, letter):
    assert gold_letter(gold) == letter


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("(c)", "C"),
        ("The answer is B.", "B"),
        (r"$\boxed{\text{(D)}}$", "D"),
        ("Option B is wrong because the angle is obtuse, so the answer is C.", "C"),
        ("(D) because the area doubles", "D"),
        ("A is correct.", "A"),
        ("Since C = 5, we get B", "B"),
        (r"$\angle A$ is largest, so D", "D"),
        ("bad and dumb", None),  # letters inside words never count
        ("cabbage", None),
        ("A triangle with these sides, so C", "C"),  # the article
        ("The answer is a triangle", None),
        ("A or B", None),
        ("The answer is B or C.", None),
        ("A B C D", None),
        (r"\boxed{A} \boxed{B}", None),
    ],
)
def test_chosen_letter(answer, letter):
    assert chosen_letter(answer) == letter


def test_choices_set_the_letters():
    assert chosen_letter("The answer is F") is None
    assert chosen_letter("The answer is F", "ABCDEF") == "F"
    assert gold_letter("F", "ABCDEF") == "F"


# --- size and nesting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"9^{9^{9}}", True),
        (r"1^{9^{9^{9}}}", True),  # the inner tower is what math-verify would evaluate
        ("7**9**8**8", True),
        (r"9.5^{1000000}", True),
        (r"\boxed{38827635!}", True),
        ("100000!", True),
        (r"2^{2^{2^{2^{2}}}}", False),  # 19,729 digits: quick to evaluate
        (r"9^{100000}", False),
        ("25000!", False),
        (r"x^{10^{10}}", False),
        (r"0.5^{9^{9}}", False),
        ("3.14^2 + 10!", False),
    ],
)
def test_too_large(text, expected):
    assert too_large(text, MAX_DIGITS) is expected


def test_too_large_reads_long_texts_in_linear_time():
    for text in ("1" * 200_000, "9^" * 100_000, "1!" * 100_000, "1." * 100_000):
        started = time.perf_counter()
        too_large(text, MAX_DIGITS)
        assert time.perf_counter() - started < 2.0


def test_nesting_depth():
    assert nesting_depth(r"\left(\frac{\sqrt{3}}{2}\right)^{2}") == 3
    assert nesting_depth("(" * 300 + "1" + ")" * 300) == 300
    assert nesting_depth(")) (a) [b {c}] }") == 2
