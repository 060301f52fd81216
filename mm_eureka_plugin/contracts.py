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
    shape ``[batch, response_len]``; ``num_tokens`` is the token-mean denominator (None: the
    unmasked tokens of this batch).
    """

    def __call__(
        self,
        log_probs: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        action_mask: torch.Tensor,
        *,
        num_tokens: torch.Tensor | float | None = None,
    ) -> tuple[torch.Tensor, Mapping[str, torch.Tensor | float]]: ...


@runtime_checkable
class AdvantageWeight(Protocol):
    """Kind ``advantage_weight``: weights of the shape of ``rewards`` ``[num_prompts, n_samples]``;
    a sample's advantage is its weight times its reward minus its group's mean reward."""

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class DataFormat(Protocol):
    """Kind ``data_format``: reads a data file into the one internal prompt record."""

    def read(self, path: str | Path) -> Iterator[PromptRecord | BadRow]:
        """One record, or bad row with its reason, per row of ``path``, in file order, numbered from 1."""


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
    """Kind ``judge``: whether each response's final answer matches ``gold``."""

    def __call__(self, responses: Sequence[str], gold: str) -> list[bool]: ...

    def check_gold(self, gold: str) -> str | None:
        """Why problems with the gold answer ``gold`` cannot be judged; None when they can."""
