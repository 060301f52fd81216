"""The accuracy reward: corpus agreement, answer reading, choice letters, options, threads, time bounds.

The text handling it reads answers with is tested in test_answers.py."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from pathlib import Path

import mm_eureka_baseline
import pytest

from mm_eureka_plugin.rewards import AccuracyReward, RewardSample
from mm_eureka_plugin.rewards.pool import KILL_GRACE_S

SLACK_S = 1.0  # scheduling and process start-up on a loaded 2-CPU machine


def judge(reward, response: str, gold: str):
    return reward([RewardSample(response=response, label=gold)])[0]


def tagged(answer: str) -> str:
    return f"<think>reasoning</think>\n<answer>{answer}</answer>"


# --- the labelled corpus -------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus():
    return mm_eureka_baseline.load_corpus()


@pytest.fixture(scope="module")
def ours(corpus, accuracy):
    return mm_eureka_baseline.agreement(corpus, mm_eureka_baseline.our_scores(corpus, accuracy))


def test_corpus_is_large_and_covers_every_category(corpus):
    categories = {case["category"] for case in corpus}
    assert len(corpus) >= 150
    assert sum(case["expected"] == 0 for case in corpus) >= 60
    assert {"plain", "fraction", "decimal_fraction", "choice", "units", "degrees", "percent", "interval", "set"} <= (
        categories
    )
    assert {"equation", "unicode", "multiline", "missing_tags", "wrong", "adversarial"} <= categories


def test_accuracy_agrees_with_the_corpus_labels(ours):
    hits, total = ours["all"]
    assert hits / total >= 0.98, ours
    for category, (hits, total) in ours.items():
        assert hits / total >= 0.9, (category, hits, total)


def test_accuracy_beats_mm_eureka_as_written(corpus, ours):
    baseline = mm_eureka_baseline.agreement(corpus, mm_eureka_baseline.baseline_scores(corpus, timeout=2.0))
    print(f"corpus agreement: ours {ours['all']}, MM-Eureka baseline {baseline['all']}")
    assert ours["all"][0] > baseline["all"][0]
    for category in ("choice", "units", "unicode", "fraction"):
        assert ours[category][0] > baseline[category][0], category


# --- reading the answer ------------------------------------------------------------------


def test_a_multi_line_answer_span_is_read(ready):
    assert judge(ready, "<think>t</think>\n<answer>\nSo:\n$\\boxed{7}$\n</answer>", "7").reward == 1.0


def test_max_answer_chars_bounds_what_is_read():
    response = tagged("$\\boxed{5}$ " + "and so on " * 100)
    assert judge(AccuracyReward(workers=2, max_answer_chars=2000), response, "5").reward == 1.0
    assert judge(AccuracyReward(workers=2, max_answer_chars=500), response, "5").reward == 0.0


# --- choice letters ------------------------------------------------------------------------


def test_choices_option_sets_the_letters():
    assert judge(AccuracyReward(workers=2, choices="ABCDEF"), tagged("The answer is F."), "F").reward == 1.0


def test_choice_golds_are_judged_by_letter(ready):
    samples = [
        RewardSample(tagged("The correct option is C, since the bag is bigger."), "C"),
        RewardSample(tagged("bad and dumb"), "B"),
        RewardSample(tagged("B"), "(B)"),
    ]
    assert [r.reward for r in ready(samples)] == [1.0, 0.0, 1.0]


# --- documented conventions, through the whole reward -----------------------------------------


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("5 mm", "5 cm", 1.0),  # units are ignored, not converted
        ("0.5%", "0.5", 1.0),  # p% also reads as p
        ("30°", r"\frac{\pi}{6}", 0.0),  # no degree-radian conversion
        (r"$\boxed{\frac{1}{\sqrt{3}}}$", r"\frac{\sqrt{3}}{3}", 1.0),
        (r"$x = 2$", "2", 1.0),
        (r"$(1, 2]$", "[1,2)", 0.0),
        ("", "5", 0.0),
    ],
)
def test_conventions(ready, answer, gold, expected):
    result = judge(ready, tagged(answer), gold)
    assert result.reward == expected
    assert result.components == {"accuracy": expected} and result.score == expected and result.error is None


def test_identical_pairs_are_verified_once(ready):
    before = ready.counts["symbolic"]
    samples = [RewardSample(tagged(r"$\boxed{\sqrt{8}}$"), r"2\sqrt{2}")] * 8
    assert [r.reward for r in ready(samples)] == [1.0] * 8
    assert ready.counts["symbolic"] == before + 1


def test_plain_numbers_skip_math_verify(ready):
    before = ready.counts["symbolic"]
    results = ready([RewardSample(tagged("0.75"), r"\frac{3}{4}"), RewardSample(tagged("12 apples"), "13")])
    assert [r.reward for r in results] == [1.0, 0.0]
    assert ready.counts["symbolic"] == before


# --- unparseable gold answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "reward", "error"), [("zero", 0.0, False), ("one", 1.0, False), ("error", 0.0, True)]
)
def test_on_bad_gold_policy(ready, caplog, policy, reward, error):
    accuracy = AccuracyReward(timeout=2.0, workers=2, on_bad_gold=policy)
    samples = [RewardSample(tagged("5"), r"\frac{"), RewardSample(tagged("6"), r"\frac{"), RewardSample("x", " ")]
    with caplog.at_level(logging.WARNING, logger="mm_eureka_plugin.rewards.accuracy"):
        results = accuracy(samples)
        accuracy(samples[:1])
    assert [r.reward for r in results] == [reward] * 3
    assert all((r.error is not None) == error for r in results)
    assert accuracy.counts["bad_gold"] == 4
    warnings = [r.getMessage() for r in caplog.records if "cannot parse the gold" in r.getMessage()]
    assert len(warnings) == 2  # once per distinct gold


# --- threads, time bounds, dead workers --------------------------------------------------------

SYMBOLIC_CASES = [(r"$\boxed{\frac{1}{\sqrt{3}}}$", r"\frac{\sqrt{3}}{3}", 1.0), (r"$\boxed{\sqrt{8}}$", "3", 0.0)]


def _symbolic_samples():
    return [RewardSample(tagged(answer), gold) for answer, gold, _ in SYMBOLIC_CASES]


def test_works_from_a_thread(ready):
    before = ready.counts["symbolic"]
    out = []
    thread = threading.Thread(target=lambda: out.append(ready(_symbolic_samples())))
    thread.start()
    thread.join()
    assert [r.reward for r in out[0]] == [expected for *_, expected in SYMBOLIC_CASES]
    assert all(r.error is None for r in out[0])
    assert ready.counts["symbolic"] > before  # math-verify ran, off the main thread


def test_works_from_asyncio_to_thread_concurrently(ready):
    async def many():
        return await asyncio.gather(*(asyncio.to_thread(ready, _symbolic_samples()) for _ in range(6)))

    for results in asyncio.run(many()):
        assert [r.reward for r in results] == [expected for *_, expected in SYMBOLIC_CASES]


ADVERSARIAL = {
    "huge exponent (not a tower of numbers)": tagged(r"$(9^{9})^{9^{9}}$"),
    "huge factorial": tagged(r"$\boxed{(10^{8})!}$"),
}
"""Answers that reach math-verify and run past any timeout (evaluating a number of 3e9 digits)."""


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_answers_cost_at_most_the_timeout(ready, name):
    accuracy = AccuracyReward(timeout=1.0, workers=2)
    assert accuracy.pool() is ready.pool()
    started = time.monotonic()
    result = judge(accuracy, ADVERSARIAL[name], "5")
    elapsed = time.monotonic() - started
    assert result.reward == 0.0 and result.error == "timeout"
    assert elapsed < 1.0 + KILL_GRACE_S + SLACK_S
    assert accuracy.counts["timeout"] == 1


def test_answers_beyond_the_limits_are_wrong_without_math_verify(ready):
    accuracy = AccuracyReward(timeout=1.0, workers=2)
    too_large_answers = (r"$9^{9^{9^{9}}}$", "9**9**9**9", r"$\boxed{38827635!}$")
    too_deep_answers = ("$" + r"\frac{1}{" * 20 + "2" + "}" * 20 + "$", "$" + "(" * 300 + "1" + ")" * 300 + "$")
    started = time.monotonic()
    results = accuracy([RewardSample(tagged(a), "5") for a in too_large_answers + too_deep_answers])
    assert time.monotonic() - started < 0.5
    assert [(r.reward, r.error) for r in results] == [(0.0, None)] * 5
    assert accuracy.counts["too_large"] == 3 and accuracy.counts["too_deep"] == 2
    assert accuracy.counts["symbolic"] == 0
    # Within the limits, math-verify still decides.
    assert judge(accuracy, tagged(r"$2^{2^{2}}$"), "16").reward == 1.0
    assert judge(accuracy, tagged("$" + r"\frac{1}{" * 3 + "2" + "}" * 3 + "$"), r"\frac{1}{2}").reward == 1.0


def test_huge_texts_are_cut_to_max_answer_chars(ready):
    for answer in ("1+" * 50_000 + "1", "x " * 50_000, "<answer>" * 20_000):
        started = time.monotonic()
        result = judge(AccuracyReward(timeout=1.0, workers=2), tagged(answer), "5")
        assert result.reward == 0.0
        assert time.monotonic() - started < 1.0 + KILL_GRACE_S + SLACK_S


def test_a_worker_killed_mid_task_is_replaced(ready):
    accuracy = AccuracyReward(timeout=60.0, workers=2)
    pool = accuracy.pool()
    idle = set(pool.pids())
    out = []
    thread = threading.Thread(
        target=lambda: out.append(judge(accuracy, ADVERSARIAL["huge exponent (not a tower of numbers)"], "5"))
    )
    thread.start()
    deadline = time.monotonic() + 10
    while len(busy := idle - set(pool.pids())) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    replaced = pool.replaced
    kill(busy.pop())
    thread.join(timeout=10)
    assert out[0].reward == 0.0 and "worker died" in out[0].error
    assert accuracy.counts["error"] == 1 and pool.replaced == replaced + 1
    assert [r.reward for r in accuracy(_symbolic_samples())] == [expected for *_, expected in SYMBOLIC_CASES]


def kill(pid: int) -> None:
    """SIGKILL ``pid`` and wait until it is dead (a zombie or gone)."""
    os.kill(pid, signal.SIGKILL)
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (FileNotFoundError, ProcessLookupError):  # reaped between calls: gone
            return
        time.sleep(0.01)


def test_workers_killed_while_idle_are_replaced(ready):
    pool = ready.pool()
    for pid in pool.pids():
        kill(pid)
    results = ready(_symbolic_samples())
    assert [r.reward for r in results] == [expected for *_, expected in SYMBOLIC_CASES]
    assert all(r.error is None for r in results)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeout": 0}, "timeout"),
        ({"on_bad_gold": "skip"}, "on_bad_gold"),
        ({"workers": 0}, "workers"),
        ({"max_answer_chars": 0}, "max_answer_chars"),
        ({"worker_memory_mb": 10}, "worker_memory_mb"),
        ({"choices": "abc"}, "choices"),
        ({"choices": "AAB"}, "choices"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        AccuracyReward(**params)


@pytest.mark.parametrize(
    ("gold", "problem"),
    [
        ("1/2", None),
        ("B", None),  # a choice letter
        ("x^2+1", None),
        ("\\frac{1}{2}", None),
        ("", "the gold answer is empty"),
        ("\\frac{", "math-verify cannot parse the gold answer '\\\\frac{'"),
        ("???", "math-verify cannot parse the gold answer '???'"),
    ],
)
def test_check_gold_says_which_gold_answers_cannot_be_judged(ready, gold, problem):
    assert ready.check_gold(gold) == problem
