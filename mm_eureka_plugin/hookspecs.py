"""The plugin contract: one pluggy hook per component kind.

Every hook takes no arguments and returns ``dict[str, factory]``. A factory is called with the
keyword parameters a recipe gives the component and returns the component itself. Its docstring's
first line is the description ``mm-eureka plugins`` shows. Call shapes of the components, by kind:

- ``reward``: ``(samples: list[RewardSample]) -> list[RewardResult | float]``
  (:mod:`mm_eureka_plugin.rewards.types`); it should not raise, and if it does the samples get 0
  and the error is counted.
- ``policy_loss``: ``(log_probs, old_log_probs, advantages, action_mask, *, num_tokens=None)
  -> (loss, metrics)``, per-token tensors of shape ``[batch, response_len]``; ``num_tokens`` is the
  token-mean denominator (default: the unmasked tokens of this batch).
- ``advantage_weight``: ``(rewards: Tensor[num_prompts, n_samples]) -> Tensor`` of the same shape,
  multiplying the group-centred reward of each sample.
- ``data_format``: an object with ``read(path) -> Iterator[PromptRecord | BadRow]``
  (:mod:`mm_eureka_plugin.data.records`), rows numbered from 1.
- ``step_splitter``: ``(solution: str) -> list[Step]`` with character offsets, and for step
  labelling ``join(steps) -> str`` (:mod:`mm_eureka_plugin.prm.steps`).
- ``prm_aggregator``: ``(scores: Sequence[float]) -> float`` over step scores in [0, 1].
- ``judge``: ``(responses: Sequence[str], gold: str) -> list[bool]`` and ``check_gold(gold) ->
  str | None`` (why such problems cannot be judged) (:mod:`mm_eureka_plugin.prm.judges`).
- A reward with ``dense = True`` credits its results' ``step_rewards`` per token in training.
"""

import pluggy

from mm_eureka_plugin import PROJECT_NAME

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

KIND_HOOKS = {
    "reward": "mm_eureka_rewards",
    "policy_loss": "mm_eureka_policy_losses",
    "advantage_weight": "mm_eureka_advantage_weights",
    "data_format": "mm_eureka_data_formats",
    "step_splitter": "mm_eureka_step_splitters",
    "prm_aggregator": "mm_eureka_prm_aggregators",
    "judge": "mm_eureka_judges",
}
"""Component kind -> the hook that registers components of that kind."""


@hookspec
def mm_eureka_rewards() -> dict:
    """Reward factories by name."""


@hookspec
def mm_eureka_policy_losses() -> dict:
    """Policy loss factories by name."""


@hookspec
def mm_eureka_advantage_weights() -> dict:
    """Advantage weighting factories by name."""


@hookspec
def mm_eureka_data_formats() -> dict:
    """Data format reader factories by name."""


@hookspec
def mm_eureka_step_splitters() -> dict:
    """Step splitter factories by name."""


@hookspec
def mm_eureka_prm_aggregators() -> dict:
    """PRM step-score aggregator factories by name."""


@hookspec
def mm_eureka_judges() -> dict:
    """Answer judge factories by name."""
