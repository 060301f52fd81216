"""A simulated policy whose step error rates are known: the ground truth for checking step labelling.

A problem has ``len(error_rates)`` steps. From a prefix without a wrong step, the policy writes the
remaining steps in MM-PRM's tag format; step i (0-based) goes wrong with probability
``error_rates[i]``, and once a step is wrong every later one is too and the answer is wrong. A
prefix that contains a wrong step leads only to wrong answers. So MC(prefix) is
``prod(1 - p_j for the steps j after it)`` before the first error and 0 from it on, and the first
wrong step of every rollout is written in its text (``x<i>`` instead of ``s<i>``).

:class:`ScriptedPolicy` instead writes out each state's rollouts, for searches worked out by hand;
:data:`SCRIPT` is one (the nodes it yields are in ``test_mcts.py``, its training paths in
``test_build_data.py``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

RIGHT = "right"
WRONG = "wrong"


@dataclass(frozen=True)
class SimulatedProblem:
    """The error rate of each step."""

    error_rates: tuple[float, ...]


def is_wrong(step: str) -> bool:
    """Whether a simulated step is a wrong one."""
    return step.startswith("x")


def first_error(steps: Sequence[str]) -> int | None:
    """The 1-based index of the first wrong step in ``steps``, None if there is none."""
    return next((i + 1 for i, step in enumerate(steps) if is_wrong(step)), None)


class SimulatedPolicy:
    """``policy(problem, prefix, k)`` for :class:`mm_eureka_plugin.prm.mcts.OmegaPRM`; seeded."""

    def __init__(self, seed: int = 0) -> None:
        self.random = random.Random(seed)
        self.calls = 0

    def __call__(self, problem: SimulatedProblem, prefix: Sequence[str], k: int) -> list[str]:
        self.calls += 1
        return [self._rollout(problem, prefix) for _ in range(k)]

    def _rollout(self, problem: SimulatedProblem, prefix: Sequence[str]) -> str:
        wrong = any(is_wrong(step) for step in prefix)
        steps = []
        for i in range(len(prefix), len(problem.error_rates)):
            wrong = wrong or self.random.random() < problem.error_rates[i]
            steps.append(f"<step>{'x' if wrong else 's'}{i}</step>")
        return "".join(steps) + f"<answer>{WRONG if wrong else RIGHT}</answer>"


def judge(responses: Sequence[str], gold: str) -> list[bool]:
    """The simulated answers' judge: the text in the answer tags equals ``gold``."""
    return [response.rpartition("<answer>")[2].removesuffix("</answer>") == gold for response in responses]


def tagged(*steps: str) -> str:
    """A rollout in the tag format: the steps, the last one as the answer."""
    return "".join(f"<step>{step}</step>" for step in steps[:-1]) + f"<answer>{steps[-1]}</answer>"


class ScriptedPolicy:
    """``policy(problem, prefix, k)`` returning the scripted rollouts of ``prefix``, recording each
    prefix asked; a prefix not in the script is an error (KeyError)."""

    def __init__(self, script: dict[tuple[str, ...], list[str]]) -> None:
        self.script = script
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, problem: object, prefix: Sequence[str], k: int) -> list[str]:
        self.asked.append(tuple(prefix))
        return list(self.script[tuple(prefix)])


WRONG_ROLLOUT = ("a", "x1", "x2", "x3", WRONG)
SCRIPT = {  # k = 4
    (): [tagged("a", "b", "c", "d", RIGHT)] * 2 + [tagged(*WRONG_ROLLOUT)] * 2,  # MC 0.5
    # the search on the root's wrong rollout (n = 5): first probe a x1 x2, ceil(5 / 2) = 3 steps
    ("a", "x1", "x2"): [tagged("x3", WRONG)] * 4,  # MC 0: go left, still under the root
    ("a",): [tagged("b2", "c2", "d2", RIGHT)] * 2 + [tagged("y1", "y2", WRONG)] * 2,  # MC 0.5: go right
    ("a", "x1"): [tagged("x2", "x3", WRONG)] * 4,  # MC 0: the first error is the rollout's step 2
    # the search on (a) + y1 y2 wrong (n = 3): first probe a y1 y2, 2 steps; then the last step alone
    ("a", "y1", "y2"): [tagged(RIGHT)] * 2 + [tagged(WRONG)] * 2,  # MC 0.5
}
