"""The math-verify call the workers run, and the thread problem that makes workers necessary."""

from __future__ import annotations

import threading

import pytest
from math_verify import parse, verify

from mm_eureka_plugin.rewards.verifier import check, parse_gold


def in_thread(fn):
    out = []

    def run():
        try:
            out.append(fn())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0]


def test_math_verify_with_its_default_timeouts_fails_off_the_main_thread():
    assert verify(parse("$5$"), parse("$5$"))  # main thread: fine
    error = in_thread(lambda: parse("$5$"))
    assert isinstance(error, ValueError) and "threaded environment" in str(error)
    gold = parse("$5$")
    error = in_thread(lambda: verify(gold, gold))
    assert isinstance(error, ValueError) and "threaded environment" in str(error)


def test_check_runs_without_signals_so_also_in_a_thread():
    assert in_thread(lambda: check("$\\frac{1}{2}$", ("$0.5$",))) is True


@pytest.mark.parametrize(
    ("gold", "attempts", "expected"),
    [
        ("$2\\sqrt{2}$", ("$\\sqrt{8}$",), True),
        ("$2\\sqrt{2}$", ("$\\sqrt{6}$",), False),
        ("$5$", ("$x$", "The answer is 5"), True),  # any attempt
        ("$\\frac{$", ("$5$",), None),  # only math-verify's raw-text fallback
        ("$$", ("$5$",), None),
        ("$a\nb$", ("$5$",), None),
    ],
)
def test_check(gold, attempts, expected):
    assert check(gold, attempts) is expected


def test_gold_answers_are_parsed_once():
    parse_gold.cache_clear()
    for _ in range(3):
        check("$\\frac{3}{4}$", ("$0.75$",))
    assert parse_gold.cache_info().misses == 1
