"""OmegaPRM search on a simulated policy whose step error rates, hence every first wrong step, are known."""

from __future__ import annotations

import random

import pytest
from simulated_policy import RIGHT, SimulatedPolicy, SimulatedProblem, first_error, is_wrong, judge

from mm_eureka_plugin.prm.mcts import OmegaPRM, SearchConfig
from mm_eureka_plugin.prm.steps import TagSplitter


def problems(count, seed=0):
    rng = random.Random(seed)
    return [SimulatedProblem(tuple(rng.uniform(0.02, 0.2) for _ in range(rng.randint(4, 10)))) for _ in range(count)]


def search(problem, config=None, seed=0, problem_id="p"):
    return OmegaPRM(SimulatedPolicy(seed), judge, TagSplitter(), config).search(problem, RIGHT, problem_id)


def test_the_first_wrong_steps_found_match_the_truth_on_at_least_90_percent_of_problems():
    matched, searched = 0, 0
    for i, problem in enumerate(problems(60)):
        tree = search(problem, seed=i)
        if not tree.searches:
            continue  # root MC 0 or 1: nothing to search
        searched += 1
        truths = [first_error(s.rollout) for s in tree.searches]
        matched += all(s.first_error == truth for s, truth in zip(tree.searches, truths, strict=True))
    assert searched >= 50
    assert matched / searched >= 0.9, (matched, searched)


def test_every_node_has_the_mc_of_its_prefix_and_the_budgets_hold():
    config = SearchConfig(k=8, max_searches=5, max_rollouts=200)
    problem = SimulatedProblem((0.1,) * 8)
    tree = search(problem, config, seed=3)
    assert 0 < len(tree.searches) <= 5 and tree.rollouts <= 200
    assert tree.rollouts == sum(node.rollouts for node in tree.nodes.values())
    assert all(node.rollouts in (0, 8) for node in tree.nodes.values())
    for steps, node in tree.nodes.items():
        if any(is_wrong(step) for step in steps):
            assert node.mc == 0.0  # after a wrong step nothing recovers
        if node.rollouts == 0:
            assert node.mc == 0.0 and steps[-1] == "wrong"  # a finished wrong rollout, judged directly
    assert tree.root.visits >= 1  # the root's wrong rollouts were searched first
    pairs = [(s.state, s.rollout) for s in tree.searches]
    assert len(set(pairs)) == len(pairs)  # the same wrong rollout sampled twice is searched once


def test_a_problem_the_policy_always_or_never_solves_yields_no_search():
    always = search(SimulatedProblem((0.0,) * 5))
    assert always.root.mc == 1.0 and not always.searches and len(always.nodes) == 1
    never = search(SimulatedProblem((1.0,) * 5))
    assert never.root.mc == 0.0 and not never.searches


def test_the_rollout_budget_stops_the_search_without_a_wrong_label():
    tree = search(SimulatedProblem((0.15,) * 10), SearchConfig(k=16, max_rollouts=40), seed=1)
    assert tree.rollouts <= 40
    assert tree.searches and tree.searches[-1].first_error is None  # cut off mid-search, not guessed
    assert all(s.first_error is not None for s in tree.searches[:-1])


def test_the_tree_serialises_with_parents_and_segments():
    tree = search(SimulatedProblem((0.1,) * 6), SearchConfig(k=8), seed=2)
    data = tree.to_json()
    nodes = data["nodes"]
    assert nodes[0]["parent"] is None and nodes[0]["steps"] == []
    for node in nodes[1:]:
        path, at = [], node
        while at["parent"] is not None:
            path[:0] = at["steps"]
            at = nodes[at["parent"]]
        assert tuple(path) in tree.nodes and tree.nodes[tuple(path)].mc == node["mc"]
    assert data["rollouts"] == tree.rollouts and len(data["searches"]) == len(tree.searches)


@pytest.mark.parametrize(
    ("field", "value"), [("k", 0), ("alpha", 0.0), ("beta", 1.5), ("max_rollouts", 0), ("length_scale", 0)]
)
def test_bad_hyper_parameters_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        SearchConfig(**{field: value})
