"""Accuracy reward throughput: ours against MM-Eureka's per-sample math-verify, and agreement.

Corpus (generated, seeded): ``--groups`` prompt groups of ``--n`` responses to one gold answer,
as a rollout produces them: integers, decimals, fractions, surds and pi, polynomials, intervals
and choice letters, each response a ``<think>`` of 1-40 sentences with LaTeX and an answer
written one of many ways (boxed, math span, prose, units, Unicode, equivalent forms, missing
answer tags) and right or wrong by construction; ``--adversarial`` of the responses replaced by
hostile ones (power towers, huge factorials and literals, deep nesting, unbalanced braces,
tag floods, long prose). Then, median of ``--repeats`` runs each:

- **baseline**: ``tests/rewards/mm_eureka_baseline.py``'s ``baseline_accuracy`` (REFERENCE.md
  section 1: parse the gold and the answer, verify, letter fallback) per sample, one after the
  other in one process as MM-Eureka's reward loop runs (in a verifier worker, so a sample that
  hangs in C code is stopped at 10 s instead of stopping the benchmark);
- **baseline, same workers as ours**: the same, spread over as many processes as ours has
  verifier workers (what parallelism alone gives);
- **ours**: ``AccuracyReward()`` with its defaults, one call per prompt group (how a reward that
  gets a group sees it);
- **ours, per sample**: one call per sample from 16 threads (how the rollout executor calls it).

Also: agreement of both with the expected labels (the generated corpus, and the 231 hand-labelled
cases of ``tests/rewards/data/accuracy_corpus.jsonl``), and the latency of one sample alone on
``--latency-samples`` adversarial responses (p50, p99, max) for both.

    .venv/bin/python benchmarks/accuracy_reward.py [--groups 288] [--n 8] [--adversarial 0.03] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from math import gcd
from pathlib import Path

from common import machine_line, timed

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "rewards"))  # mm_eureka_baseline; the workers get this path too

import mm_eureka_baseline  # noqa: E402

from mm_eureka_plugin.rewards import AccuracyReward, RewardSample  # noqa: E402
from mm_eureka_plugin.rewards.pool import WorkerPool  # noqa: E402

BASELINE_TIMEOUT_S = 10.0
"""The baseline's bound per sample: math-verify's own 5 s parse and 5 s verify timeouts."""

SENTENCES = [
    "Let me look at the figure carefully.",
    "The triangle has sides $a = {a}$ and $b = {b}$, so by Pythagoras $c^2 = a^2 + b^2$.",
    "From the image, the shaded region covers {a} of the {b} equal parts.",
    "We set up the equation ${a}x + {b} = {c}$ and solve for $x$.",
    "The area of a circle is $\\pi r^2$, here with $r = {a}$.",
    "Substituting gives $\\frac{{{a}}}{{{b}}} \\cdot {c}$.",
    "Checking the units: the length is in cm and the area in cm$^2$.",
    "The angle at $B$ is ${a}^\\circ$, so the remaining angle is $180^\\circ - {a}^\\circ$.",
    "Wait, that does not look right; let me recompute.",
    "So the sum is ${a} + {b} = {c}$.",
    "The bar chart shows {a} for Monday and {b} for Tuesday.",
    "Hmm, the options differ only in sign, so I must be careful.",
    "Using the quadratic formula $x = \\frac{{-b \\pm \\sqrt{{b^2 - 4ac}}}}{{2a}}$.",
    "Then $\\sqrt{{{a}}} \\approx {b}.{c}$, which is consistent with the picture.",
    "The probability is the number of favourable outcomes over all outcomes.",
]


def think(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.choice([1, 2, 3, 5, 8, 12, 20, 40])):
        parts.append(rng.choice(SENTENCES).format(a=rng.randint(2, 99), b=rng.randint(2, 99), c=rng.randint(2, 99)))
    return " ".join(parts)


def _fraction_latex(value: Fraction) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def integer_case(rng: random.Random) -> tuple[str, list[str], list[str]]:
    n = rng.randint(-60, 3000)
    right = [f"{n}", f"${n}$", f"\\boxed{{{n}}}", f"The answer is {n}.", f"$\\boxed{{{n}}}$", f"{n} cm", f"{n}.0"]
    wrong_n = n + rng.choice([-10, -2, -1, 1, 2, 10, n])
    wrong = [f"{wrong_n}", f"$\\boxed{{{wrong_n}}}$", f"The answer is {wrong_n}."]
    return str(n), right, wrong


def decimal_case(rng: random.Random) -> tuple[str, list[str], list[str]]:
    value = Fraction(rng.randint(1, 399), rng.choice([2, 4, 5, 8, 20]))
    if value.denominator == 1:
        value += Fraction(1, 2)
    text = f"{float(value):g}"
    right = [text, f"${text}$", f"\\boxed{{{text}}}", f"{value.numerator}/{value.denominator}", _fraction_latex(value)]
    wrong = [f"{float(value) + rng.choice([-1, 0.1, 1]):g}", f"\\boxed{{{float(value) * 10:g}}}"]
    return text, right, wrong


def fraction_case(rng: random.Random) -> tuple[str, list[str], list[str]]:
    while True:
        a, b = rng.randint(1, 40), rng.randint(2, 41)
        if gcd(a, b) == 1:
            break
    gold = f"\\frac{{{a}}}{{{b}}}"
    right = [
        f"{a}/{b}",
        f"$\\frac{{{a}}}{{{b}}}$",
        f"\\boxed{{\\dfrac{{{a}}}{{{b}}}}}",
        f"$\\frac{{{2 * a}}}{{{2 * b}}}$",
    ]
    wrong = [f"{b}/{a}", f"$\\frac{{{a + 1}}}{{{b}}}$", f"\\boxed{{{a}}}"]
    return gold, right, wrong


def surd_case(rng: random.Random) -> tuple[str, list[str], list[str]]:
    k, m = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7])
    kind = rng.choice(["root", "pi", "half"])
    if kind == "root":
        gold = f"{k}\\sqrt{{{m}}}"
        right = [f"${k}\\sqrt{{{m}}}$", f"\\boxed{{\\sqrt{{{k * k * m}}}}}", f"{k}√{m}", f"$\\sqrt{{{m}}} \\cdot {k}$"]
        wrong = [f"$\\sqrt{{{m}}}$", f"\\boxed{{{k}\\sqrt{{{m + 1}}}}}"]
    elif kind == "pi":
        gold = f"{k}\\pi"
        right = [f"${k}\\pi$", f"\\boxed{{{k}\\pi}}", f"{k}π", f"$\\pi \\cdot {k}$"]
        wrong = [f"${k + 1}\\pi$", f"\\boxed{{{k}}}"]
    else:
        gold = f"\\frac{{\\sqrt{{{m}}}}}{{{k}}}"
        right = [
            f"$\\frac{{\\sqrt{{{m}}}}}{{{k}}}$",
            f"\\boxed{{\\frac{{1}}{{{k}}}\\sqrt{{{m}}}}}",
            f"$\\sqrt{{{m}}}/{k}$",
        ]
        wrong = [f"$\\frac{{\\sqrt{{{m}}}}}{{{k + 1}}}$", f"\\boxed{{\\sqrt{{{m}}}}}"]
    return gold, right, wrong


def polynomial_case(rng: random.Random) -> tuple[str, list[str], list[str]]:
    r = rng.randint(1, 9)
    gold = f"x^2+{2 * r}x+{r * r}"
    right = [f"$(x+{r})^2$", f"\\boxed{{x^2 + {2 * r}x + {r * r}}}", f"$x^{{2}}+{2 * r}x+{r * r}$"]
    wrong = [f"$(x-{r})^2$", f"\\boxed{{x^2 + {r}x + {r * r}}}"]
    return gold, right, wrong


def interval_case(rng: random.Random) -> tuple[str, list[str], list[str]]:
    a = rng.randint(-9, 5)
    b = a + rng.randint(1, 9)
    gold = f"[{a}, {b})"
    right = [f"$[{a},{b})$", f"\\boxed{{[{a}, {b})}}"]
    wrong = [f"$({a}, {b})$", f"\\boxed{{[{a}, {b + 1})}}"]
    return gold, right, wrong


def choice_case(rng: random.Random) -> tuple[str, list[str], list[str]]:
    letter = rng.choice("ABCD")
    other = rng.choice([c for c in "ABCD" if c != letter])
    right = [
        letter,
        f"({letter})",
        f"The answer is {letter}.",
        f"\\boxed{{{letter}}}",
        f"{letter}. {rng.randint(2, 90)}",
    ]
    wrong = [other, f"({other})", f"\\boxed{{{other}}}"]
    return letter, right, wrong


CASES = [
    (integer_case, 4),
    (choice_case, 3),
    (decimal_case, 1),
    (fraction_case, 2),
    (surd_case, 1),
    (polynomial_case, 1),
    (interval_case, 1),
]
"""Gold kinds and their weights (integers and choice letters dominate math RL data)."""


def adversarial(rng: random.Random) -> str:
    """A hostile answer (expected 0 against any gold the corpus uses)."""
    kind = rng.randrange(10)
    if kind == 0:
        return "$" + "^{".join(str(rng.randint(7, 9)) for _ in range(rng.randint(4, 6))) + "}" * 5 + "$"
    if kind == 1:
        return "**".join(str(rng.randint(7, 9)) for _ in range(rng.randint(4, 6)))
    if kind == 2:
        return f"$\\boxed{{{rng.randint(10**6, 10**8)}!}}$"
    if kind == 3:
        return "1" * rng.randint(2_000, 20_000)
    if kind == 4:
        depth = rng.randint(50, 200)
        return "$" + "\\frac{1}{" * depth + "2" + "}" * depth + "$"
    if kind == 5:
        depth = rng.randint(50, 200)
        return "$" + "\\sqrt{" * depth + "2" + "}" * depth + "$"
    if kind == 6:
        return "$" + "x+" * rng.randint(1_000, 5_000) + "x$"
    if kind == 7:
        return "\\boxed{" + "{" * rng.randint(1_000, 10_000)
    if kind == 8:
        return "<answer>" * rng.randint(500, 2_000)
    return "the answer is " + "very " * rng.randint(1_000, 5_000) + "large"


def make_corpus(groups: int, n: int, adversarial_share: float, seed: int = 0) -> list[dict]:
    """``groups * n`` cases: ``response``, ``gold``, ``expected`` (1 or 0), ``category`` (the gold's
    kind, e.g. ``integer``, or ``adversarial``)."""
    rng = random.Random(seed)
    makers, weights = zip(*CASES)
    cases = []
    for _ in range(groups):
        maker = rng.choices(makers, weights)[0]
        gold, right, wrong = maker(rng)
        accuracy = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9])  # groups of every difficulty
        for _ in range(n):
            hostile = rng.random() < adversarial_share
            if hostile:
                answer, expected = adversarial(rng), 0
            else:
                expected = int(rng.random() < accuracy)
                answer = rng.choice(right if expected else wrong)
            layout = rng.random()
            if layout < 0.85:
                response = f"<think>{think(rng)}</think>\n<answer>{answer}</answer>"
            elif layout < 0.95:  # answer tags forgotten: the answer follows the reasoning
                response = f"<think>{think(rng)}</think>\nTherefore, the final answer is {answer}"
            else:
                response = f"<think>{think(rng)}</think> <answer>\n{answer}\n</answer>"
            category = "adversarial" if hostile else maker.__name__.removesuffix("_case")
            cases.append({"response": response, "gold": gold, "expected": expected, "category": category})
    return cases


def baseline(pool: WorkerPool, cases: list[dict]) -> list[float]:
    outcomes = pool.run(mm_eureka_baseline.TASK, [(c["response"], c["gold"]) for c in cases], BASELINE_TIMEOUT_S)
    return [0.0 if o.error is not None else o.value for o in outcomes]


def ours_by_group(reward: AccuracyReward, cases: list[dict], n: int) -> list[float]:
    scores = []
    for start in range(0, len(cases), n):
        group = cases[start : start + n]
        scores += [r.reward for r in reward([RewardSample(response=c["response"], label=c["gold"]) for c in group])]
    return scores


def ours_per_sample(reward: AccuracyReward, cases: list[dict]) -> list[float]:
    def one(case: dict) -> float:
        return reward([RewardSample(response=case["response"], label=case["gold"])])[0].reward

    with ThreadPoolExecutor(16) as threads:
        return list(threads.map(one, cases))


def latencies(fn, cases: list[dict]) -> list[float]:
    return [timed(lambda case=case: fn([case]))[0] for case in cases]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=288)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--adversarial", type=float, default=0.03, help="share of responses that are hostile")
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    cases = make_corpus(args.groups, args.n, args.adversarial)
    rng = random.Random(1)
    hostile = [
        {"response": f"<think>{think(rng)}</think>\n<answer>{adversarial(rng)}</answer>", "gold": "5"}
        for _ in range(args.latency_samples)
    ]
    labelled = mm_eureka_baseline.load_corpus()

    reward = AccuracyReward()
    base_pool = WorkerPool(size=1, preload=("mm_eureka_baseline", "math_verify"))
    wide_pool = WorkerPool(size=reward.workers, preload=("mm_eureka_baseline", "math_verify"))
    pools = (reward.pool(), base_pool, wide_pool)
    assert all(pool.wait_ready() for pool in pools), "verifier workers did not start"
    ours_by_group(reward, cases[: 4 * args.n], args.n)  # warm every worker: not timed
    baseline(base_pool, cases[:32])
    baseline(wide_pool, cases[:32])

    runs: dict[str, list[float]] = {"baseline": [], "baseline_wide": [], "ours": [], "ours_per_sample": []}
    scores: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name, fn in (
            ("baseline", lambda: baseline(base_pool, cases)),
            ("baseline_wide", lambda: baseline(wide_pool, cases)),
            ("ours", lambda: ours_by_group(reward, cases, args.n)),
            ("ours_per_sample", lambda: ours_per_sample(reward, cases)),
        ):
            seconds, scores[name] = timed(fn)
            runs[name].append(seconds)
    latency = {
        "baseline": latencies(lambda group: baseline(base_pool, group), hostile),
        "ours": latencies(lambda group: ours_by_group(reward, group, 1), hostile),
    }
    labelled_agreement = {
        "baseline": mm_eureka_baseline.agreement(labelled, baseline(base_pool, labelled))["all"],
        "ours": mm_eureka_baseline.agreement(labelled, mm_eureka_baseline.our_scores(labelled, reward))["all"],
    }
    base_pool.close()
    wide_pool.close()

    median = {name: statistics.median(values) for name, values in runs.items()}
    rate = {name: len(cases) / seconds for name, seconds in median.items()}
    hostile_count = sum(c["category"] == "adversarial" for c in cases)
    print(machine_line(f"ours with {reward.workers} verifier workers"))
    print(
        f"{len(cases)} responses in {args.groups} groups of {args.n} ({hostile_count} adversarial), "
        f"median of {args.repeats} runs\n"
    )
    print("| reward | samples/s | s | agreement (generated) | agreement (231 labelled) |")
    print("|---|---|---|---|---|")
    described = {
        "baseline": "MM-Eureka per sample, one process (baseline)",
        "baseline_wide": f"MM-Eureka per sample, {reward.workers} processes",
        "ours": "ours, one call per group",
        "ours_per_sample": "ours, one call per sample, 16 threads",
    }
    for name, label in described.items():
        hits, total = labelled_agreement["baseline" if name.startswith("baseline") else "ours"]
        generated_hits, generated = mm_eureka_baseline.agreement(cases, scores[name])["all"]
        print(
            f"| {label} | {rate[name]:.0f} | {median[name]:.2f} | {generated_hits / generated:.3f} | {hits}/{total} |"
        )
    print(f"\nLatency of one adversarial sample alone ({len(hostile)} samples, s):\n")
    print("| reward | p50 | p99 | max |")
    print("|---|---|---|---|")
    for name, values in latency.items():
        print(f"| {name} | {percentile(values, 0.5):.3f} | {percentile(values, 0.99):.3f} | {max(values):.3f} |")
    print(f"\nratio ours / baseline (samples/s): {rate['ours'] / rate['baseline']:.2f}")
    print(f"ratio ours per sample / baseline (samples/s): {rate['ours_per_sample'] / rate['baseline']:.2f}")
    print(
        f"ratio ours / baseline with {reward.workers} processes (samples/s): {rate['ours'] / rate['baseline_wide']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
