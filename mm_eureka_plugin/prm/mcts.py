"""OmegaPRM step labelling: Monte Carlo tree search for the first wrong step of a solution.

MM-PRM (arXiv 2505.13427) labels steps as OmegaPRM does (Luo et al., arXiv 2406.06592;
REFERENCE.md section 3), in ``data_pipeline/omegaprm.py`` (ModalMinds/MM-PRM b914fd66). A *state*
is the question plus a prefix of solution steps; its Monte Carlo value MC(s) is the fraction of
``k`` rollouts from s whose final answer the judge accepts.

1. The root (no steps) is estimated; a problem whose root MC is 0 or 1 is not searched.
2. Every estimate (``monte_carlo_estimation``) adds each distinct correct rollout from s as a
   child node with MC 1.0, judged, not rolled out (``State.add_correct_rollout``). Wrong rollouts
   are not nodes: when 0 < MC(s) < 1 they join a pool of (state, wrong rollout) pairs
   (``State.add_incorrect_rollout``). The search picks the pair maximising ``Q(s, r) + U(s)``
   with ``Q = alpha ** (1 - MC(s)) * beta ** (words(r) / L)`` (a likely-right state whose wrong
   rollout is short: a near miss) and ``U = c_puct * sqrt(sum of visits) / (1 + visits(s))``.
3. Binary search over r's n steps for the first one whose prefix has MC = 0, exactly as
   ``OmegaPRM.binary_search_phase``: ``left, right = 0, n - 1``; the probe is the state
   ``parent + r[left : mid + 1]`` with ``mid = (left + right) // 2`` (the first probe is the first
   ceil(n / 2) steps), added as a child of ``parent`` with its own MC estimate (k rollouts, which
   add nodes and pool entries as in 2). MC = 0: the probe stays as a negative leaf and the search
   goes left (``right = mid - 1``) under the same parent; MC > 0: it goes right
   (``left = mid + 1``) with the probe as the parent. The probe of the last step alone
   (``left == right == n - 1``: every shorter prefix had MC > 0) is the whole rollout, judged, not
   rolled out. MM-PRM asks its LLM judge again (temperature 0.5) about the last step; we take the
   verdict that put r in the pool (wrong: MC 0), the same for a deterministic judge. The first
   wrong step is ``left + 1`` at the end. So a wrong rollout becomes nodes only as probe segments.
4. Until the pool is empty or a per-problem budget is spent (searches, rollouts).

Where we differ from MM-PRM, on purpose: nodes are keyed by their step prefix, so a state reached
twice (the same correct rollout sampled from two states, a probe another search already made) is
one node, estimated once, with the parent it was first added under; MM-PRM adds it again. A budget
is a hard bound (MM-PRM checks the rollout budget only between searches, so a search can overrun it).
All k rollouts of a state are asked of the policy in one call (one batch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

RolloutPolicy = Callable[[Any, Sequence[str], int], list[str]]
"""``policy(problem, prefix_steps, k)``: k continuations of the solution after ``prefix_steps``,
each running to a final answer."""
Judge = Callable[[Sequence[str], str], list[bool]]
"""``judge(responses, gold)``: whether each response's final answer is right."""


@dataclass(frozen=True)
class SearchConfig:
    """OmegaPRM's hyper-parameters, defaults as in MM-PRM / OmegaPRM.

    ``k`` rollouts per state estimate; ``alpha``, ``beta``, ``length_scale`` (L, in words) shape Q;
    ``c_puct`` weighs exploration; ``max_searches`` binary searches and ``max_rollouts`` rollouts
    per problem.
    """

    k: int = 16
    alpha: float = 0.5
    beta: float = 0.9
    length_scale: float = 2000.0
    c_puct: float = 0.125
    max_searches: int = 200
    max_rollouts: int = 1000

    def __post_init__(self) -> None:
        for name in ("k", "max_searches", "max_rollouts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("alpha", "beta"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}.")
        if self.length_scale <= 0 or self.c_puct < 0:
            raise ValueError("length_scale must be positive and c_puct at least 0.")


@dataclass
class Node:
    """A state: the step prefix, its MC value, how many rollouts estimated it (0: a finished
    solution, judged directly), how often the search selected it, and its parent's prefix (None
    for the root): the state it was estimated from (a correct rollout) or the binary search's
    parent when it was probed; always a proper prefix of ``steps``."""

    steps: tuple[str, ...]
    mc: float
    rollouts: int
    visits: int = 0
    parent: tuple[str, ...] | None = None


@dataclass
class SearchResult:
    """One binary search: the selected state, the rollout's steps, and the first wrong step found
    (1-based, counted in the rollout; None when the budget ran out mid-search)."""

    state: tuple[str, ...]
    rollout: tuple[str, ...]
    first_error: int | None


@dataclass
class SearchTree:
    """A problem's search: every node by prefix, the binary searches, and what was spent."""

    problem_id: str
    gold: str
    nodes: dict[tuple[str, ...], Node] = field(default_factory=dict)
    searches: list[SearchResult] = field(default_factory=list)
    rollouts: int = 0

    @property
    def root(self) -> Node:
        return self.nodes[()]

    def parent(self, steps: tuple[str, ...]) -> tuple[str, ...] | None:
        """The parent of node ``steps`` (None for the root)."""
        return self.nodes[steps].parent

    def to_json(self) -> dict[str, Any]:
        """The tree as JSON: nodes in prefix order with their parent's index."""
        order = sorted(self.nodes, key=lambda steps: (len(steps), steps))
        index = {steps: i for i, steps in enumerate(order)}
        return {
            "id": self.problem_id,
            "gold": self.gold,
            "rollouts": self.rollouts,
            "nodes": [
                {
                    "parent": None if (parent := self.parent(steps)) is None else index[parent],
                    "steps": list(steps[len(parent or ()) :]),
                    "mc": self.nodes[steps].mc,
                    "rollouts": self.nodes[steps].rollouts,
                    "visits": self.nodes[steps].visits,
                }
                for steps in order
            ],
            "searches": [
                {"state": index[s.state], "rollout": list(s.rollout), "first_error": s.first_error}
                for s in self.searches
            ],
        }


@dataclass
class _Pool:
    """(state, wrong rollout) pairs awaiting a binary search, with the rollout's word count; a pair
    is pooled once per problem (the same text sampled twice is searched once)."""

    entries: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = field(default_factory=dict)
    seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=set)

    def add(self, state: tuple[str, ...], rollout: tuple[str, ...], words: int) -> None:
        if (state, rollout) not in self.seen:
            self.seen.add((state, rollout))
            self.entries[state, rollout] = words


class BudgetSpent(Exception):
    """The problem's rollout budget cannot pay for another estimate."""


class OmegaPRM:
    """The search of the module docstring, over a policy, a judge and a step splitter."""

    def __init__(self, policy: RolloutPolicy, judge: Judge, splitter: Callable, config: SearchConfig | None = None):
        self.policy = policy
        self.judge = judge
        self.split = splitter
        self.config = config or SearchConfig()

    def search(self, problem: Any, gold: str, problem_id: str) -> SearchTree:
        """Label ``problem`` (handed to the policy as is) whose right answer is ``gold``."""
        tree = SearchTree(problem_id, gold)
        pool = _Pool()
        try:
            self._estimate(problem, tree, (), pool)
        except BudgetSpent:
            return tree
        while pool.entries and len(tree.searches) < self.config.max_searches:
            state, rollout = self._select(tree, pool.entries)
            del pool.entries[state, rollout]
            tree.nodes[state].visits += 1
            first_error = self._binary_search(problem, tree, state, rollout, pool)
            tree.searches.append(SearchResult(state, rollout, first_error))
            if first_error is None:
                break
        return tree

    def _select(self, tree: SearchTree, pool: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The (state, rollout) of the pool maximising Q + U (the first pooled among equals)."""
        c = self.config
        total = math.sqrt(sum(node.visits for node in tree.nodes.values()))

        def value(key) -> float:
            node = tree.nodes[key[0]]
            q = c.alpha ** (1.0 - node.mc) * c.beta ** (pool[key] / c.length_scale)
            return q + c.c_puct * total / (1 + node.visits)

        return max(pool, key=value)

    def _binary_search(self, problem, tree: SearchTree, state, rollout, pool: _Pool) -> int | None:
        """The 1-based index, in ``rollout``, of its first wrong step; None if the budget ran out.

        MM-PRM's ``OmegaPRM.binary_search_phase`` (see the module docstring, step 3), as a loop.
        """
        n = len(rollout)
        left, right, parent = 0, n - 1, state
        while left <= right:
            mid = (left + right) // 2
            prefix = state + rollout[: mid + 1]
            if mid == n - 1:  # left == right == n - 1: the whole rollout, wrong by the judge's verdict
                tree.nodes.setdefault(prefix, Node(prefix, 0.0, rollouts=0, parent=parent))
                right = mid - 1
                continue
            if prefix not in tree.nodes:
                try:
                    self._estimate(problem, tree, prefix, pool, parent)
                except BudgetSpent:
                    return None
            if tree.nodes[prefix].mc > 0:
                left, parent = mid + 1, prefix
            else:
                right = mid - 1
        return left + 1

    def _estimate(self, problem, tree: SearchTree, prefix: tuple[str, ...], pool: _Pool, parent=None) -> None:
        """Add the node ``prefix`` (a child of ``parent``) with its MC from k rollouts, as MM-PRM's
        ``monte_carlo_estimation``: each correct rollout becomes a child node with MC 1.0 (once per
        distinct rollout, none if it has no steps), and the wrong ones join the pool if 0 < MC < 1
        (a rollout already pooled for this state, e.g. the same text sampled twice, once)."""
        k = self.config.k
        if tree.rollouts + k > self.config.max_rollouts:
            raise BudgetSpent
        texts = self.policy(problem, prefix, k)
        if len(texts) != k:
            raise ValueError(f"the policy returned {len(texts)} rollouts for {k} asked.")
        tree.rollouts += k
        right = self.judge(texts, tree.gold)
        mc = sum(map(bool, right)) / k
        tree.nodes[prefix] = Node(prefix, mc, rollouts=k, parent=parent)
        for text, ok in zip(texts, right):
            steps = tuple(step.text for step in self.split(text))
            if not steps:
                continue
            if ok:
                full = prefix + steps
                tree.nodes.setdefault(full, Node(full, 1.0, rollouts=0, parent=prefix))
            elif 0 < mc < 1:
                pool.add(prefix, steps, len(text.split()))
