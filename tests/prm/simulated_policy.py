"""A simulated policy whose step error rates are known: the ground truth for checking step labelling.

A problem has ``len(error_rates)`` steps. From a prefix without a wrong step, the policy writes the
remaining steps in MM-PRM's tag format; step i (0-based) goes wrong with probability
``error_rates[i]``, and once a step is wrong every later one is too and the answer is wrong. A
prefix that contains a wrong step leads only to wrong answers. So MC(prefix) is
``prod(1 - p_j for the steps j after it)`` before the first error and 0 from it on, and the first
wrong step of every rollout is written in its text (``x<i>`` instead of ``s<i>``).
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
