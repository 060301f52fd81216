"""Best-of-N metrics on hand-made problems whose every metric is worked out below."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest
from PIL import Image

from mm_eureka_plugin.eval.best_of_n import Candidate, Problem, Report, evaluate
from mm_eureka_plugin.registry import resolve

sys.path.insert(0, str(Path(__file__).parents[1] / "prm"))
from mm_prm_reference import mm_prm_pick, mm_prm_score  # noqa: E402  MM-PRM's formulas

AGGREGATORS = {"min": min, "last": lambda s: s[-1], "avg": lambda s: sum(s) / len(s)}


def C(answer, correct, *scores):
    return Candidate(answer, correct, tuple(scores))


# Per problem: pass@1, maj@N, pass@N, bon/min, bon/last, bon/avg (worked out in the comments).
PROBLEMS = [
    # all wrong: every metric 0.
    Problem("g1", (C("7", False, 0.5), C("7", False, 0.6), C("8", False, 0.7), C("9", False, 0.8)), "geometry"),
    # pass@1 2/4; votes "4" x2 (c0, c3 after strip) vs "5" x2: tie, "4" occurs first -> right.
    # min: .2 .3 .4 .1 -> c2 wrong; last: .9 .3 .4 .8 -> c0 right; avg: .667 .467 .4 .45 -> c0 right.
    Problem(
        "a1",
        (
            C("4", True, 0.9, 0.2, 0.9),
            C("5", False, 0.6, 0.5, 0.3),
            C("5", False, 0.4, 0.4, 0.4),
            C(" 4 ", True, 0.1, 0.8),
        ),
        "algebra",
    ),
    # pass@1 2/4; "x  =  3\n" collapses to "x = 3" (x2, wrong) and "X = 2" != "x = 2" (case) -> maj wrong.
    # c3 has no step scores. min: .1 .5 .3 -> c1 wrong; last: .1 .5 .6 -> c2 right; avg: .633 .5 .45 -> c0 wrong.
    Problem(
        "a2",
        (
            C("x = 3", False, 0.9, 0.9, 0.1),
            C("x  =  3\n", False, 0.5, 0.5),
            C("x = 2", True, 0.3, 0.6),
            C("X = 2", True),
        ),
        "algebra",
    ),
    # pass@1 2/4; "12" x2 -> maj right. min: .7 .6 .7 -> tie c0/c2, c0 (earliest) right;
    # last: .7 .75 .7 -> c1 wrong; avg: .75 .767 .7 -> c1 wrong.
    Problem(
        "g2",
        (C("12", True, 0.8, 0.7), C("13", False, 0.95, 0.6, 0.75), C("11", False, 0.7, 0.7), C("12", True)),
        "geometry",
    ),
    # no category, N = 2: pass@1 1/2; tie "1"/"2" -> "1" right; every aggregator picks c1, wrong.
    Problem("u1", (C("1", True, 0.2), C("2", False, 0.9))),
]

EXPECTED_ALGEBRA = {"pass@1": 0.5, "maj@N": 0.5, "pass@N": 1.0, "bon/min": 0.0, "bon/last": 1.0, "bon/avg": 0.5}
EXPECTED_GEOMETRY = {"pass@1": 0.25, "maj@N": 0.5, "pass@N": 0.5, "bon/min": 0.5, "bon/last": 0.0, "bon/avg": 0.0}
EXPECTED_OVERALL = {"pass@1": 0.4, "maj@N": 0.6, "pass@N": 0.8, "bon/min": 0.2, "bon/last": 0.4, "bon/avg": 0.2}


@pytest.fixture
def report() -> Report:
    return evaluate(PROBLEMS, AGGREGATORS)


def test_every_metric_overall_and_per_category(report):
    assert list(report.overall) == ["pass@1", "maj@N", "pass@N", "bon/min", "bon/last", "bon/avg"]
    assert report.overall == pytest.approx(EXPECTED_OVERALL)
    assert list(report.by_category) == ["algebra", "geometry"]
    assert report.by_category["algebra"] == pytest.approx(EXPECTED_ALGEBRA)
    assert report.by_category["geometry"] == pytest.approx(EXPECTED_GEOMETRY)
    assert report.counts == {"overall": 5, "algebra": 2, "geometry": 2}
    assert (report.n_min, report.n_max) == (2, 4)


def test_min_and_last_pick_different_candidates(report):
    assert report.by_category["algebra"]["bon/min"] != report.by_category["algebra"]["bon/last"]
    assert report.by_category["geometry"]["bon/min"] != report.by_category["geometry"]["bon/last"]


def test_same_n_everywhere():
    report = evaluate(PROBLEMS[:4], AGGREGATORS)
    assert (report.n_min, report.n_max) == (4, 4)
    assert report.to_markdown().startswith("N = 4\n")


def test_no_aggregators_no_step_scores_needed():
    problems = [Problem("p", (C("1", True), C("2", False)))]
    report = evaluate(problems, {})
    assert report.overall == {"pass@1": 0.5, "maj@N": 1.0, "pass@N": 1.0}
    assert report.by_category == {}
    assert report.counts == {"overall": 1}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ((("b", False), ("a", True), ("b", False), ("a", True)), 0.0),  # 2-2 tie: "b" occurs first
        ((("a", True), ("b", False), ("b", False), ("a", True)), 1.0),  # 2-2 tie: "a" occurs first
        ((("b", False), ("a", True), ("a", True)), 1.0),  # plain majority
        ((("  a\tb ", True), ("c", False), ("c", False), ("a b", True), ("a  b", True)), 1.0),  # whitespace
        ((("A", True), ("a", False), ("a", False)), 0.0),  # case-sensitive
        ((("7", False), ("7", True), ("8", False)), 1.0),  # right if any candidate with the answer is right
    ],
)
def test_majority_vote(answers, expected):
    problem = Problem("p", tuple(Candidate(answer, correct) for answer, correct in answers))
    assert evaluate([problem], {}).overall["maj@N"] == expected


@pytest.mark.parametrize(("first_correct", "expected"), [(False, 0.0), (True, 1.0)])
def test_best_of_n_tie_picks_earliest(first_correct, expected):
    problem = Problem("p", (C("1", False, 0.1), C("2", first_correct, 0.8), C("3", not first_correct, 0.8)))
    assert evaluate([problem], {"max": max}).overall["bon/max"] == expected


def test_a_plain_function_ranks_candidates_without_steps_at_minus_infinity():
    # the correct candidate without steps would win any comparison at 0 or above
    problem = Problem("p", (C("1", True), C("2", False, 0.0)))
    assert evaluate([problem], {"min": min}).overall["bon/min"] == 0.0


FLOOR_AT_ZERO = ["min", "last", "product", "average", "max", "mean_odds"]


@pytest.mark.parametrize("name", FLOOR_AT_ZERO)
def test_a_candidate_without_steps_scores_mm_prms_zero(name):
    aggregator = {name: resolve("prm_aggregator", name)}
    # it counts in N and the baselines; it loses to any candidate scoring above 0 ...
    problem = Problem("p", (C("1", True), C("2", False, 0.3, 0.01), C("3", False)))
    report = evaluate([problem], aggregator)
    assert report.overall["pass@1"] == pytest.approx(1 / 3) and report.n_max == 3
    assert report.overall[f"bon/{name}"] == 0.0
    # ... and, first among candidates scoring 0, it is picked, as MM-PRM's list.index(max(...)) does
    problem = Problem("p", (C("1", True), C("2", False, 0.0, 0.0), C("3", False)))
    assert evaluate([problem], aggregator).overall[f"bon/{name}"] == 1.0
    problem = Problem("p", (C("2", False, 0.0, 0.0), C("1", True)))
    assert evaluate([problem], aggregator).overall[f"bon/{name}"] == 0.0


@pytest.mark.parametrize(("name", "scores"), [("sum_logprob", (0.0, 0.5)), ("sum_logit", (0.1, 0.5))])
def test_a_candidate_without_steps_is_never_picked_over_one_with_steps_where_scores_go_below_zero(name, scores):
    # MM-PRM's 0 ranks the stepless candidate first: above sum log p = -9999 + log 0.5, and above logits < 0
    problem = Problem("p", (C("1", True), C("2", False, *scores), C("3", False, 0.01)))
    assert mm_prm_pick(name, [c.step_scores for c in problem.candidates]) == 0
    assert evaluate([problem], {name: resolve("prm_aggregator", name)}).overall[f"bon/{name}"] == 0.0
    # a problem whose candidates all lack steps: the first is picked (-inf ties), as MM-PRM (0 ties)
    problem = Problem("p", (C("1", True), C("2", False)))
    assert evaluate([problem, PROBLEMS[4]], {name: resolve("prm_aggregator", name)}).overall[f"bon/{name}"] == 0.5


def one_hot(problem, pick):
    """The problem with only candidate ``pick`` correct: Best-of-N scores 1 exactly when it picks ``pick``."""
    return Problem(problem.id, tuple(C(c.answer, i == pick, *c.step_scores) for i, c in enumerate(problem.candidates)))


@pytest.mark.parametrize("name", [*FLOOR_AT_ZERO, "sum_logprob", "sum_logit"])
def test_picks_equal_mm_prms_on_random_problems_with_ties_saturation_and_stepless_candidates(name):
    rng = random.Random(name)
    grid = [0.0, 1.0, 0.25, 0.5, 0.75]  # coarse values: many ties
    problems, differ = [], 0
    for k in range(400):
        candidates = []
        for _ in range(rng.randint(1, 8)):
            steps = 0 if rng.random() < 0.2 else rng.randint(1, 4)
            scores = [rng.choice(grid) if rng.random() < 0.7 else rng.random() for _ in range(steps)]
            if name == "sum_logit":
                scores = [s for s in scores if s != 0.0]  # MM-PRM has no value for the logit of 0
            candidates.append(C(str(k), False, *scores))
        problem = Problem(str(k), tuple(candidates))
        reference = mm_prm_pick(name, [c.step_scores for c in problem.candidates])
        if name in ("sum_logprob", "sum_logit"):  # ours: -inf without steps, so MM-PRM's pick among those with steps
            values = [mm_prm_score(name, list(c.step_scores)) if c.step_scores else -math.inf for c in candidates]
            differ += values.index(max(values)) != reference
            reference = values.index(max(values))
        problems.append(one_hot(problem, reference))
    report = evaluate(problems, {name: resolve("prm_aggregator", name)})
    assert report.overall[f"bon/{name}"] == 1.0
    if name == "sum_logprob":
        assert differ > 0  # the stepless rule is where we part from MM-PRM, and it does bite


def test_negative_infinite_aggregate_is_pickable():
    problem = Problem("p", (C("1", True, 0.0), C("2", False, 0.0)))
    report = evaluate([problem], {"logp": lambda s: sum(math.log(x) if x > 0 else -math.inf for x in s)})
    assert report.overall["bon/logp"] == 1.0


@pytest.mark.parametrize(
    ("problems", "aggregators", "message"),
    [
        ([], AGGREGATORS, "no problems"),
        ([Problem("empty-one", ())], {}, "'empty-one' has no candidates"),
        ([Problem("dup", (C("1", True),)), Problem("dup", (C("1", True),))], {}, "'dup' occurs more than once"),
        ([Problem("unscored", (C("1", True), C("2", False)))], {"min": min}, "no candidate of any problem has step"),
        ([Problem("p7", (C("1", True),), "overall")], {}, "category 'overall' is reserved"),
        ([Problem("nan", (C("1", True, 0.5),))], {"bad": lambda s: math.nan}, "'nan', candidate 0: aggregator 'bad'"),
    ],
)
def test_errors_name_the_problem(problems, aggregators, message):
    with pytest.raises(ValueError, match=message):
        evaluate(problems, aggregators)


def test_aggregator_error_names_problem_and_candidate():
    def strict(scores):
        if any(s > 1 for s in scores):
            raise ValueError("step scores must be probabilities in [0, 1]")
        return min(scores)

    problems = [Problem("ok", (C("1", True, 0.5),)), Problem("bad", (C("1", True, 0.5), C("2", False, 1.5)))]
    with pytest.raises(ValueError, match=r"problem 'bad', candidate 1: aggregator 'strict' failed: step scores"):
        evaluate(problems, {"strict": strict})


def test_to_markdown(report):
    lines = report.to_markdown().splitlines()
    assert lines[0] == "N = 2-4"
    assert lines[2] == "| subset | count | pass@1 | maj@N | pass@N | bon/min | bon/last | bon/avg |"
    assert lines[3] == "|---|---:|---:|---:|---:|---:|---:|---:|"
    assert lines[4] == "| overall | 5 | 40.0 | 60.0 | 80.0 | 20.0 | 40.0 | 20.0 |"
    assert lines[5].startswith("| algebra | 2 | 50.0 |")
    assert lines[6] == "| geometry | 2 | 25.0 | 50.0 | 50.0 | 50.0 | 0.0 | 0.0 |"
    assert len(lines) == 7


def test_to_json_round_trips(report):
    data = report.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["overall"] == report.overall
    assert data["by_category"]["geometry"] == report.by_category["geometry"]
    assert data["counts"] == {"overall": 5, "algebra": 2, "geometry": 2}
    assert (data["n_min"], data["n_max"]) == (2, 4)


def test_plot_writes_png(report, tmp_path):
    out = report.plot(tmp_path / "sub" / "bon.png")
    assert out == tmp_path / "sub" / "bon.png"
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.width > 100 and image.height > 100
