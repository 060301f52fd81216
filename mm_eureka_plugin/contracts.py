"""The call shape of each component kind, one :class:`typing.Protocol` per kind.

A component is what a factory registered through :mod:`mm_eureka_plugin.hookspecs` returns. Each
Protocol is ``runtime_checkable``: ``isinstance`` checks that its methods exist, not their
signatures. Only core types appear, never OpenRLHF objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from mm_eureka_plugin.data.records import BadRow, PromptRecord
    from mm_eureka_plugin.prm.steps import Step
    from mm_eureka_plugin.rewards.types import RewardResult, RewardSample
    from mm_eureka_plugin.rollouts.types import RolloutPrompt, Turn


@runtime_checkable
class Reward(Protocol):
    """Kind ``reward``: one result per sample, a :class:`~mm_eureka_plugin.rewards.types.RewardResult`
    or a float reward.

    It should not raise; if it does, the call's samples get 0 and the error is counted
    (:func:`~mm_eureka_plugin.rewards.types.score_samples`). Training also reads three optional
    attributes: ``dense`` (true: the results' ``step_rewards`` are credited per token),
    ``uses_server`` (true: it scores with the run's PRM server, ``plugin.prm``) and ``uses_images``
    (false: it never reads ``RewardSample.images``, so rollouts do not decode them for it; a reward
    without the attribute gets the images).
    """

    def __call__(self, samples: list[RewardSample]) -> Sequence[RewardResult | float]: ...


@runtime_checkable
class PolicyLoss(Protocol):
    """Kind ``policy_loss``: the scalar loss to minimise and scalar metrics by name.

    ``log_probs``, ``old_log_probs``, ``advantages`` and ``action_mask`` are per-token tensors of
    shape ``[batch, response_len]``. ``num_tokens`` and ``num_sequences`` are the denominators of
    a token mean and a sequence mean over the whole optimizer step on all ranks, divided by the
    data-parallel size (None: this batch's unmasked tokens and non-empty sequences); a loss uses
    the one its aggregation needs.
    """

    def __call__(
        self,
        log_probs: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        action_mask: torch.Tensor,
        *,
        num_tokens: torch.Tensor | float | None = None,
        num_sequences: torch.Tensor | float | None = None,
    ) -> tuple[torch.Tensor, Mapping[str, torch.Tensor | float]]: ...


@runtime_checkable
class AdvantageWeight(Protocol):
    """Kind ``advantage_weight``: weights of the shape of ``rewards`` ``[num_prompts, n_samples]``;
    a sample's advantage is its weight times its reward minus its group's mean reward."""

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class DataFormat(Protocol):
    """Kind ``data_format``: reads a data source into the one internal prompt record."""

    def read(self, path: str | Path) -> Iterator[PromptRecord | BadRow]:
        """One record, or bad row with its reason, per row of ``path``, in order, numbered from 1;
        ``path`` is a data source: a data file, a hub-layout folder or a hub dataset name, the last
        two with an optional ``:split`` (:func:`mm_eureka_plugin.data.formats.data_source`)."""


@runtime_checkable
class StepSplitter(Protocol):
    """Kind ``step_splitter``: the steps of a solution, in order, with character offsets into it.

    Step labelling (``mm-eureka prm annotate``) also needs ``join(steps: Sequence[str]) -> str``:
    the step texts written in the splitter's layout. The full contract is in
    :mod:`mm_eureka_plugin.prm.steps`.
    """

    def __call__(self, solution: str) -> list[Step]: ...


@runtime_checkable
class PRMAggregator(Protocol):
    """Kind ``prm_aggregator``: one number for a solution from its PRM step scores in [0, 1]."""

    def __call__(self, scores: Sequence[float]) -> float: ...


@runtime_checkable
class Judge(Protocol):
    """Kind ``judge``: whether each response's final answer matches ``gold``; ``question`` is the
    problem's text when the caller has it (``mm-eureka eval`` passes it), for judges that read it."""

    def __call__(self, responses: Sequence[str], gold: str, question: str | None = None) -> list[bool]: ...

    def check_gold(self, gold: str) -> str | None:
        """Why problems with the gold answer ``gold`` cannot be judged; None when they can."""


@runtime_checkable
class Episode(Protocol):
    """One rollout sample's environment, started by a :class:`RolloutExecutor`."""

    def step(self, response: str) -> Turn:
        """The answer to the policy's latest ``response`` (decoded, special tokens skipped): done, or
        the next user message. Called in a worker thread, so it may block; a raise ends the sample
        with reward 0 and a counted ``reward_error``."""


@runtime_checkable
class RolloutExecutor(Protocol):
    """Kind ``rollout_executor``: what happens between the policy's responses in a rollout sample.

    The trainer's executor generates a response, hands it to the sample's episode
    (``start(prompt)``, once per sample) and, until a :class:`~mm_eureka_plugin.rollouts.types.Turn`
    is done, writes the turn's message with the model's chat template and generates again. The last
    response is scored by the reward; tokens the episode adds carry no loss. Optional attributes:
    ``metric_keys`` (the names of the turns' metrics, logged for every sample), ``system_prompt``
    (text added to every training prompt's system message when the data is converted),
    ``uses_source_images`` (true: the converted data keeps each image's source resolution for
    ``RolloutPrompt.source_images``) and ``max_added_images`` (the most images an episode adds to a
    sample: the launcher requires room for them in vLLM's per-request image limit).
    """

    def start(self, prompt: RolloutPrompt) -> Episode: ...


PROTOCOLS: dict[str, type] = {
    "reward": Reward,
    "policy_loss": PolicyLoss,
    "advantage_weight": AdvantageWeight,
    "data_format": DataFormat,
    "step_splitter": StepSplitter,
    "prm_aggregator": PRMAggregator,
    "judge": Judge,
    "rollout_executor": RolloutExecutor,
}
"""Component kind -> its Protocol (the one its hook's factories return, :mod:`mm_eureka_plugin.hookspecs`)."""


def contract_problem(kind: str, component: object) -> str | None:
    """Why ``component`` (what a factory of ``kind`` returned) is not one, or None when it is.

    Beyond the Protocol's methods, the kinds that are pure functions of small inputs are called on
    one: a ``policy_loss`` (on whole groups when it has a ``group_size``) must return a scalar
    tensor that depends on ``log_probs`` and a mapping of metrics, an ``advantage_weight`` weights
    of the rewards' shape, a ``step_splitter`` a list, a ``prm_aggregator`` a number, a
    ``rollout_executor`` an episode whose first step on a probe prompt returns a usable ``Turn``.
    Rewards and judges are not called (they may need a server).
    """
    protocol = PROTOCOLS[kind]
    if not isinstance(component, protocol):
        methods = ", ".join(name for name in vars(protocol) if name == "__call__" or not name.startswith("_"))
        return f"it returned a {type(component).__name__}, which lacks the {kind} methods ({methods})"
    probe = _PROBES.get(kind)
    if probe is None:
        return None
    try:
        return probe(component)
    except Exception as exc:
        return f"calling it on a probe input raised {type(exc).__name__}: {exc}"


def _probe_policy_loss(loss: PolicyLoss) -> str | None:
    import torch

    rows = 2 * (getattr(loss, "group_size", None) or 1)  # whole groups for a loss that averages per group
    log_probs = torch.full((rows, 3), -1.0, requires_grad=True)
    mask = torch.ones(rows, 3, dtype=torch.bool)
    advantages = torch.tensor([1.0, -1.0]).repeat(rows // 2).unsqueeze(-1).expand(rows, 3)
    out = loss(log_probs, log_probs.detach() - 0.1, advantages, mask, num_tokens=3.0 * rows, num_sequences=float(rows))
    if not (isinstance(out, tuple) and len(out) == 2):
        return f"it returned {type(out).__name__}, not (loss, metrics)"
    value, metrics = out
    if not (isinstance(value, torch.Tensor) and value.numel() == 1 and value.requires_grad):
        return "its loss is not a one-element tensor that depends on log_probs"
    if not isinstance(metrics, Mapping):
        return f"its metrics are a {type(metrics).__name__}, not a mapping of names to numbers"
    return None


def _probe_advantage_weight(weight: AdvantageWeight) -> str | None:
    import torch

    rewards = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    shape = tuple(torch.as_tensor(weight(rewards)).shape)
    return None if shape == (2, 3) else f"for rewards of shape (2, 3) it returned weights of shape {shape}"


def _probe_step_splitter(splitter: StepSplitter) -> str | None:
    steps = splitter("Step 1: 2 + 3 = 5.\n\nStep 2: so the answer is 5.")
    return None if isinstance(steps, list) else f"it returned a {type(steps).__name__}, not a list of steps"


def _probe_prm_aggregator(aggregate: PRMAggregator) -> str | None:
    value = aggregate([0.5, 0.9])
    number = isinstance(value, (int, float)) or (hasattr(value, "item") and getattr(value, "ndim", 1) == 0)
    return None if number else f"for scores [0.5, 0.9] it returned a {type(value).__name__}, not a number"


def _probe_rollout_executor(executor: RolloutExecutor) -> str | None:
    from PIL import Image

    from mm_eureka_plugin.rollouts.types import RolloutPrompt, Turn

    image = Image.new("RGB", (56, 56), (128, 128, 128))
    prompt = RolloutPrompt(prompt="What is 1 + 1?", images=[image], source_images=[image], label="2")
    turn = executor.start(prompt).step("<answer>2</answer>")
    if not isinstance(turn, Turn):
        return f"its episode's step returned a {type(turn).__name__}, not a mm_eureka_plugin.rollouts.Turn"
    return turn.problem()


_PROBES = {
    "policy_loss": _probe_policy_loss,
    "advantage_weight": _probe_advantage_weight,
    "step_splitter": _probe_step_splitter,
    "prm_aggregator": _probe_prm_aggregator,
    "rollout_executor": _probe_rollout_executor,
}
