"""OmegaPRM search on a simulated policy whose step error rates, hence every first wrong step, are known."""

from __future__ import annotations

import random

import pytest
from simulated_policy import (
    RIGHT,
    SCRIPT,
    WRONG_ROLLOUT,
    ScriptedPolicy,
    SimulatedPolicy,
    SimulatedProblem,
    first_error,
    is_wrong,
    judge,
    tagged,
)

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
        if node.rollouts == 0:  # a finished rollout, judged directly: a correct one, or a searched wrong one
            assert (node.mc, steps[-1]) in ((1.0, "right"), (0.0, "wrong"))
        if node.parent is not None:
            assert node.parent == steps[: len(node.parent)] and len(node.parent) < len(steps)
            assert tree.nodes[node.parent].mc > 0  # as in MM-PRM, nothing hangs below an MC = 0 node
    assert tree.root.visits >= 1  # the root's wrong rollouts were searched first
    pairs = [(s.state, s.rollout) for s in tree.searches]
    assert len(set(pairs)) == len(pairs)  # the same wrong rollout sampled twice is searched once


def test_a_problem_the_policy_always_or_never_solves_yields_no_search():
    always = search(SimulatedProblem((0.0,) * 5))
    assert always.root.mc == 1.0 and not always.searches
    assert [node.mc for node in always.nodes.values()] == [1.0, 1.0]  # its 16 equal correct rollouts: one node
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


def test_a_scripted_search_builds_mm_prms_tree_node_by_node():
    policy = ScriptedPolicy(SCRIPT)
    tree = OmegaPRM(policy, judge, TagSplitter(), SearchConfig(k=4)).search(None, RIGHT, "p")
    assert policy.asked == [(), ("a", "x1", "x2"), ("a",), ("a", "x1"), ("a", "y1", "y2")]
    nodes = {steps: (node.mc, node.rollouts, node.parent) for steps, node in tree.nodes.items()}
    assert nodes == {
        (): (0.5, 4, None),
        ("a", "b", "c", "d", "right"): (1.0, 0, ()),  # a correct rollout: a child with MC 1
        ("a", "x1", "x2"): (0.0, 4, ()),  # a probe with MC 0 stays, a negative leaf
        ("a",): (0.5, 4, ()),
        ("a", "b2", "c2", "d2", "right"): (1.0, 0, ("a",)),
        ("a", "x1"): (0.0, 4, ("a",)),  # probed under the last probe with MC > 0
        ("a", "y1", "y2"): (0.5, 4, ("a",)),
        ("a", "y1", "y2", "right"): (1.0, 0, ("a", "y1", "y2")),
        ("a", "y1", "y2", "wrong"): (0.0, 0, ("a", "y1", "y2")),  # the last step alone: judged, not rolled out
    }  # the wrong rollouts (a x1 x2 x3 wrong, ...) are not nodes
    searched = [(s.state, s.rollout, s.first_error) for s in tree.searches]
    assert searched == [
        ((), WRONG_ROLLOUT, 2),
        (("a",), ("y1", "y2", "wrong"), 3),
        (("a", "y1", "y2"), ("wrong",), 1),  # the leaf is already a node: found again without rollouts
    ]
    assert tree.rollouts == 20 and [tree.nodes[s].visits for s in [(), ("a",), ("a", "y1", "y2")]] == [1, 1, 1]


def mm_prm_probes(n, error_at):
    """The prefix lengths MM-PRM's binary_search_phase (data_pipeline/omegaprm.py) probes on a wrong
    rollout of n steps whose prefixes have MC > 0 up to step ``error_at`` (excluded), and the
    first error it finds (the last length with MC > 0, plus 1)."""
    probes, found = [], 0

    def phase(left, right):
        nonlocal found
        if left > right:
            return
        mid = (left + right) // 2
        probes.append(mid + 1)
        if left == right == n - 1:  # the whole rollout, judged wrong
            return
        if mid + 1 < error_at:
            found = mid + 1
            phase(mid + 1, right)
        else:
            phase(left, mid - 1)

    phase(0, n - 1)
    return probes, found + 1


def probe(n, error_at):
    """Our probes on such a rollout: the prefix lengths in the order the search made them, and the first error found."""
    rollout = tuple(f"w{i}" for i in range(1, n)) + ("wrong",)
    script = {(): [tagged("r", "right"), tagged(*rollout)]}
    for m in range(1, n):  # MC 0.5 before the first error, 0 from it on
        good = m < error_at
        script[rollout[:m]] = [tagged("right") if good else tagged("wrong"), tagged("wrong")]
    policy = ScriptedPolicy(script)
    tree = OmegaPRM(policy, judge, TagSplitter(), SearchConfig(k=2, max_searches=1)).search(None, RIGHT, "p")
    lengths = [len(prefix) for prefix in policy.asked[1:]]
    if rollout in tree.nodes:
        lengths.append(n)  # the last step alone, judged without rollouts
    (result,) = tree.searches
    return lengths, result.first_error


@pytest.mark.parametrize(("n", "first_probe"), [(4, 2), (5, 3), (1, 1), (2, 1), (3, 2)])
def test_the_first_probe_is_the_first_ceil_half_of_the_steps(n, first_probe):
    for error_at in range(1, n + 1):
        lengths, found = probe(n, error_at)
        assert lengths[0] == first_probe and found == error_at


@pytest.mark.parametrize("n", range(1, 13))
def test_the_binary_search_probes_exactly_what_mm_prm_probes(n):
    for error_at in range(1, n + 1):
        assert probe(n, error_at) == mm_prm_probes(n, error_at), error_at


def test_the_binary_search_probes_for_four_and_five_steps():
    assert probe(4, 1) == ([2, 1], 1) and probe(4, 3) == ([2, 3], 3) and probe(4, 4) == ([2, 3, 4], 4)
    assert probe(5, 1) == ([3, 1], 1) and probe(5, 3) == ([3, 1, 2], 3) and probe(5, 5) == ([3, 4, 5], 5)


@pytest.mark.parametrize(
    ("field", "value"), [("k", 0), ("alpha", 0.0), ("beta", 1.5), ("max_rollouts", 0), ("length_scale", 0)]
)
def test_bad_hyper_parameters_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        SearchConfig(**{field: value})
