"""OmegaPRM step labelling: Monte Carlo tree search for the first wrong step of a solution.

MM-PRM (arXiv 2505.13427) labels steps as OmegaPRM does (Luo et al., arXiv 2406.06592;
REFERENCE.md section 3). A *state* is the question plus a prefix of solution steps; its Monte
Carlo value MC(s) is the fraction of ``k`` rollouts from s whose final answer the judge accepts.

1. The root (no steps) is estimated; a problem whose root MC is 0 or 1 yields no labels.
2. Every incorrect rollout r from a state s with 0 < MC(s) < 1 joins a pool. The search picks the
   pair maximising ``Q(s, r) + U(s)`` with ``Q = alpha ** (1 - MC(s)) * beta ** (words(r) / L)``
   (a likely-right state whose wrong rollout is short: a near miss) and
   ``U = c_puct * sqrt(sum of visits) / (1 + visits(s))``.
3. Binary search over r's steps for the first one whose prefix has MC = 0: each probe estimates
   one new state (k rollouts); MC > 0 moves the search right, MC = 0 left. The rollout as a whole
   is wrong, so its full prefix has MC = 0 without rollouts. Every probed state becomes a tree
   node, and its own incorrect rollouts join the pool when 0 < MC < 1.
4. Until the pool is empty or a per-problem budget is spent (searches, rollouts).

Nodes are keyed by their step prefix; a node's parent is its longest proper prefix in the tree.
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
    solution, judged directly), and how often the search selected it."""

    steps: tuple[str, ...]
    mc: float
    rollouts: int
    visits: int = 0


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
        """The longest proper prefix of ``steps`` that is a node (None for the root)."""
        for cut in range(len(steps) - 1, -1, -1):
            if steps[:cut] in self.nodes:
                return steps[:cut]
        return None

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
        """The 1-based index, in ``rollout``, of its first wrong step; None if the budget ran out."""
        low, high = 0, len(rollout)  # MC(state + rollout[:low]) > 0; MC(state + rollout[:high]) = 0
        full = state + rollout
        if full not in tree.nodes:
            tree.nodes[full] = Node(full, 0.0, rollouts=0)  # a finished, wrong solution
        while high - low > 1:
            middle = (low + high) // 2
            prefix = state + rollout[:middle]
            if prefix not in tree.nodes:
                try:
                    self._estimate(problem, tree, prefix, pool)
                except BudgetSpent:
                    return None
            if tree.nodes[prefix].mc > 0:
                low = middle
            else:
                high = middle
        return high

    def _estimate(self, problem, tree: SearchTree, prefix: tuple[str, ...], pool: _Pool) -> None:
        """Add the node ``prefix`` with its MC from k rollouts; its wrong rollouts join the pool if
        0 < MC < 1 (a rollout already pooled for this state, e.g. the same text sampled twice, once)."""
        k = self.config.k
        if tree.rollouts + k > self.config.max_rollouts:
            raise BudgetSpent
        texts = self.policy(problem, prefix, k)
        if len(texts) != k:
            raise ValueError(f"the policy returned {len(texts)} rollouts for {k} asked.")
        tree.rollouts += k
        right = self.judge(texts, tree.gold)
        mc = sum(map(bool, right)) / k
        tree.nodes[prefix] = Node(prefix, mc, rollouts=k)
        if 0 < mc < 1:
            for text, ok in zip(texts, right):
                steps = tuple(step.text for step in self.split(text))
                if not ok and steps:
                    pool.add(prefix, steps, len(text.split()))
