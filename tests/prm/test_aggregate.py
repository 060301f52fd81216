"""Step-score aggregators: MM-PRM's eight Best-of-N aggregations on hand-computed examples."""

from __future__ import annotations

import math
import pickle
import random

import pytest
from mm_prm_reference import mm_prm_score

from mm_eureka_plugin import registry
from mm_eureka_plugin.prm import aggregate
from mm_eureka_plugin.registry import ComponentError

NAMES = ["average", "last", "max", "mean_odds", "min", "product", "sum_logit", "sum_logprob"]
FACTORIES = {
    "min": aggregate.min_aggregator,
    "last": aggregate.last_aggregator,
    "product": aggregate.product_aggregator,
    "average": aggregate.average_aggregator,
    "sum_logprob": aggregate.sum_logprob_aggregator,
    "max": aggregate.max_aggregator,
    "sum_logit": aggregate.sum_logit_aggregator,
    "mean_odds": aggregate.mean_odds_aggregator,
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("min", 0.5),
        ("last", 0.8),
        ("product", 0.36),  # 0.9 * 0.5 * 0.8
        ("average", 2.2 / 3),
        ("sum_logprob", math.log(0.9) + math.log(0.5) + math.log(0.8)),  # = ln 0.36
        ("max", 0.9),
        ("sum_logit", math.log(9) + 0.0 + math.log(4)),  # odds 9, 1, 4
        ("mean_odds", (9 + 1 + 4) / 3),
    ],
)
def test_aggregations_on_a_hand_made_solution(name, expected):
    assert FACTORIES[name]()([0.9, 0.5, 0.8]) == pytest.approx(expected, rel=1e-12)


def test_order_matters_only_for_last():
    scores = [0.8, 0.5, 0.9]
    assert aggregate.last_aggregator()(scores) == 0.9
    assert aggregate.min_aggregator()(scores) == 0.5
    assert aggregate.product_aggregator()(scores) == pytest.approx(0.36)


@pytest.mark.parametrize("name", NAMES)
def test_a_single_step(name):
    value = FACTORIES[name]()([0.75])
    expected = {"sum_logprob": math.log(0.75), "sum_logit": math.log(3.0), "mean_odds": 3.0}.get(name, 0.75)
    assert value == pytest.approx(expected)
    assert type(value) is float


@pytest.mark.parametrize(
    ("name", "scores", "expected"),
    [
        ("sum_logprob", [0.0, 0.5], -9999 + math.log(0.5)),
        ("sum_logprob", [1.0, 0.5], math.log(0.5)),  # log 1 = 0: no sentinel needed
        ("sum_logprob", [0.0, 0.0], -19998.0),  # each saturated step counts
        ("sum_logit", [1.0, 0.5], 9999.0),
        ("sum_logit", [1.0, 0.8], 9999 + math.log(4)),
        ("sum_logit", [0.0, 0.5], -9999.0),  # MM-PRM crashes here; ours mirrors its +9999
        ("sum_logit", [1.0, 0.0], 0.0),
        ("mean_odds", [1.0, 0.5], 5000.0),  # (9999 + 1) / 2
        ("mean_odds", [0.0, 1.0, 0.5], 10000 / 3),  # odds of 0 are 0
        ("mean_odds", [0.0], 0.0),
    ],
)
def test_saturated_scores_take_mm_prms_9999_sentinel(name, scores, expected):
    assert FACTORIES[name]()(scores) == pytest.approx(expected, rel=1e-15)
    if not (name == "sum_logit" and 0.0 in scores):
        assert FACTORIES[name]()(scores) == pytest.approx(mm_prm_score(name, scores), rel=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_every_aggregation_equals_mm_prms_formula_on_random_solutions(name):
    rng = random.Random(name)
    grid = [0.0, 1.0, 0.25, 0.5, 0.75, 1e-300, 1 - 2**-53]  # saturated, coarse (ties) and extreme scores
    for _ in range(300):
        scores = [rng.choice(grid) if rng.random() < 0.4 else rng.random() for _ in range(rng.randint(1, 8))]
        if name == "sum_logit":
            scores = [s for s in scores if s != 0.0] or [0.5]  # MM-PRM has no value for the logit of 0
        assert FACTORIES[name]()(scores) == pytest.approx(mm_prm_score(name, scores), rel=1e-12, abs=1e-12), scores


def test_sentinels_rank_saturated_solutions_as_mm_prm_does():
    # a step at exactly 1 makes sum_logit / mean_odds prefer the solution, a step at 0 sum_logprob reject it
    solutions = [[0.9, 0.9], [1.0, 0.01], [0.0, 0.99], [0.5], [1.0, 1.0, 0.02]]
    for name in ("sum_logprob", "sum_logit", "mean_odds"):
        ranked = [FACTORIES[name]()(s) for s in solutions]
        reference = [mm_prm_score(name, s) for s in solutions if not (name == "sum_logit" and 0.0 in s)]
        ours = [v for v, s in zip(ranked, solutions) if not (name == "sum_logit" and 0.0 in s)]
        assert sorted(range(len(ours)), key=ours.__getitem__) == sorted(
            range(len(reference)), key=reference.__getitem__
        )
    assert max(range(5), key=lambda i: FACTORIES["sum_logit"]()(solutions[i])) == 4  # 2 x 9999 beats 1 x 9999


def test_eps_clamps_instead_of_the_sentinel():
    eps = 1e-6
    scores = [1.0, 0.0, 0.5]
    assert aggregate.sum_logprob_aggregator(eps=eps)(scores) == pytest.approx(
        math.log(1 - eps) + math.log(eps) + math.log(0.5)
    )
    assert aggregate.sum_logit_aggregator(eps=eps)([1.0, 0.5]) == pytest.approx(math.log((1 - eps) / eps))
    assert aggregate.sum_logit_aggregator(eps=eps)([0.0, 0.5]) == pytest.approx(math.log(eps / (1 - eps)))
    assert aggregate.mean_odds_aggregator(eps=eps)(scores) == pytest.approx(
        ((1 - eps) / eps + eps / (1 - eps) + 1.0) / 3
    )
    assert aggregate.sum_logit_aggregator(eps=0.1)([1.0]) == pytest.approx(math.log(9))
    assert aggregate.mean_odds_aggregator(eps=0.2)([0.0, 1.0]) == pytest.approx((0.25 + 4.0) / 2)


@pytest.mark.parametrize("name", NAMES)
def test_no_steps_score_is_mm_prms_zero_where_zero_is_the_floor(name):
    expected = -math.inf if name in ("sum_logprob", "sum_logit") else 0.0
    assert FACTORIES[name]().no_steps_score == expected
    if expected == 0.0:
        assert mm_prm_score(name, []) == 0  # the same value MM-PRM gives, and no scored solution goes below it
        assert all(FACTORIES[name]()(s) >= 0 for s in ([0.0], [0.0, 1.0], [1e-300]))


def test_aggregations_without_log_do_not_clamp():
    assert aggregate.product_aggregator()([1.0, 0.0]) == 0.0
    assert aggregate.min_aggregator()([1.0, 0.0]) == 0.0
    assert aggregate.max_aggregator()([1.0, 0.0]) == 1.0
    assert aggregate.average_aggregator()([1.0, 0.0]) == 0.5


def test_accepts_any_real_numbers_sequence():
    torch = pytest.importorskip("torch")
    assert aggregate.min_aggregator()(torch.tensor([0.25, 0.75])) == 0.25
    assert aggregate.average_aggregator()((1, 0)) == 0.5


@pytest.mark.parametrize("name", NAMES)
def test_no_scores_is_an_error(name):
    with pytest.raises(ValueError, match="no step scores"):
        FACTORIES[name]()([])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("bad", "shown"), [(1.5, "1.5"), (-0.1, "-0.1"), (float("nan"), "nan"), (math.inf, "inf")])
def test_a_score_outside_zero_one_is_an_error_naming_value_and_index(name, bad, shown):
    with pytest.raises(ValueError, match=rf"index 2 is {shown}\b"):
        FACTORIES[name]()([0.5, 0.5, bad, 0.5])


def test_a_score_that_is_not_a_number_is_an_error():
    with pytest.raises(ValueError, match="index 1 is 'high', not a number"):
        aggregate.min_aggregator()([0.5, "high"])
    with pytest.raises(ValueError, match="index 0 is None"):
        aggregate.min_aggregator()([None])


@pytest.mark.parametrize("factory", [aggregate.sum_logprob_aggregator, aggregate.sum_logit_aggregator])
@pytest.mark.parametrize("eps", [0.0, -1e-6, 0.5, 1.0])
def test_eps_must_be_in_zero_half(factory, eps):
    with pytest.raises(ValueError, match="eps must be in"):
        factory(eps=eps)


def test_aggregators_pickle_for_ray_workers():
    mean_odds = pickle.loads(pickle.dumps(aggregate.mean_odds_aggregator(eps=0.01)))
    assert mean_odds([0.5]) == pytest.approx(1.0)
    assert repr(mean_odds) == "StepScoreAggregator('mean_odds', eps=0.01)"


def test_registry_lists_exactly_the_eight_and_builds_them():
    assert registry.names("prm_aggregator") == NAMES
    assert registry.resolve("prm_aggregator", "min")([0.9, 0.5, 0.8]) == 0.5
    sum_logit = registry.resolve("prm_aggregator", "sum_logit", eps=0.01)
    assert sum_logit([1.0]) == pytest.approx(math.log(99))
    for name in NAMES:
        component = registry.registry().get("prm_aggregator", name)
        assert component.distribution == "mm-eureka-plugin"
        assert component.description  # the one line `mm-eureka plugins` shows


def test_registry_rejects_eps_where_there_is_no_log():
    with pytest.raises(ComponentError, match="unknown parameter 'eps'"):
        registry.resolve("prm_aggregator", "min", eps=0.1)
    with pytest.raises(ComponentError, match="eps must be in"):
        registry.resolve("prm_aggregator", "mean_odds", eps=0.7)
