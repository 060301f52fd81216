"""The plugin contract: one pluggy hook per component kind.

Every hook takes no arguments and returns ``dict[str, factory]``. A factory is called with the
keyword parameters a recipe gives the component and returns the component itself, which has its
kind's call shape: the Protocols of :mod:`mm_eureka_plugin.contracts`. A factory's docstring's
first line is the description ``mm-eureka plugins`` shows.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from mm_eureka_plugin import PROJECT_NAME
from mm_eureka_plugin.contracts import (
    AdvantageWeight,
    DataFormat,
    Judge,
    PolicyLoss,
    PRMAggregator,
    Reward,
    RolloutExecutor,
    StepSplitter,
)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

KIND_HOOKS = {
    "reward": "mm_eureka_rewards",
    "policy_loss": "mm_eureka_policy_losses",
    "advantage_weight": "mm_eureka_advantage_weights",
    "data_format": "mm_eureka_data_formats",
    "step_splitter": "mm_eureka_step_splitters",
    "prm_aggregator": "mm_eureka_prm_aggregators",
    "judge": "mm_eureka_judges",
    "rollout_executor": "mm_eureka_rollout_executors",
}
"""Component kind -> the hook that registers components of that kind."""


@hookspec
def mm_eureka_rewards() -> dict[str, Callable[..., Reward]]:
    """Reward factories by name."""


@hookspec
def mm_eureka_policy_losses() -> dict[str, Callable[..., PolicyLoss]]:
    """Policy loss factories by name."""


@hookspec
def mm_eureka_advantage_weights() -> dict[str, Callable[..., AdvantageWeight]]:
    """Advantage weighting factories by name."""


@hookspec
def mm_eureka_data_formats() -> dict[str, Callable[..., DataFormat]]:
    """Data format reader factories by name."""


@hookspec
def mm_eureka_step_splitters() -> dict[str, Callable[..., StepSplitter]]:
    """Step splitter factories by name."""


@hookspec
def mm_eureka_prm_aggregators() -> dict[str, Callable[..., PRMAggregator]]:
    """PRM step-score aggregator factories by name."""


@hookspec
def mm_eureka_judges() -> dict[str, Callable[..., Judge]]:
    """Answer judge factories by name."""


@hookspec
def mm_eureka_rollout_executors() -> dict[str, Callable[..., RolloutExecutor]]:
    """Rollout executor factories by name."""
