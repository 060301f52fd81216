"""The project's own plugin: registers every built-in component through the public hooks."""

from collections.abc import Callable

from mm_eureka_plugin import hookimpl
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
from mm_eureka_plugin.data.formats import MMK12Jsonl, MMK12Parquet, OpenRLHFRows
from mm_eureka_plugin.losses import CappedPPOLoss, ClipFilterLikeWeight, CPGDLoss, EqualWeight, StdWeight
from mm_eureka_plugin.prm import aggregate
from mm_eureka_plugin.prm.judges import MathVerifyJudge, OpenAICompatibleJudge
from mm_eureka_plugin.prm.steps import BlankLineSplitter, StepKSplitter, TagSplitter
from mm_eureka_plugin.rewards import AccuracyReward, FormatReward, PRMReward, WeightedReward
from mm_eureka_plugin.rollouts import ImageTools, SingleTurn


@hookimpl
def mm_eureka_rewards() -> dict[str, Callable[..., Reward]]:
    return {"accuracy": AccuracyReward, "format": FormatReward, "weighted": WeightedReward, "prm": PRMReward}


@hookimpl
def mm_eureka_data_formats() -> dict[str, Callable[..., DataFormat]]:
    return {"mmk12": MMK12Jsonl, "mmk12-parquet": MMK12Parquet, "openrlhf": OpenRLHFRows}


@hookimpl
def mm_eureka_policy_losses() -> dict[str, Callable[..., PolicyLoss]]:
    return {"cpgd": CPGDLoss, "ppo": CappedPPOLoss}


@hookimpl
def mm_eureka_advantage_weights() -> dict[str, Callable[..., AdvantageWeight]]:
    return {"equal": EqualWeight, "std": StdWeight, "clip_filter_like": ClipFilterLikeWeight}


@hookimpl
def mm_eureka_step_splitters() -> dict[str, Callable[..., StepSplitter]]:
    return {"tags": TagSplitter, "blank_line": BlankLineSplitter, "step_k": StepKSplitter}


@hookimpl
def mm_eureka_prm_aggregators() -> dict[str, Callable[..., PRMAggregator]]:
    return {
        "min": aggregate.min_aggregator,
        "last": aggregate.last_aggregator,
        "product": aggregate.product_aggregator,
        "average": aggregate.average_aggregator,
        "sum_logprob": aggregate.sum_logprob_aggregator,
        "max": aggregate.max_aggregator,
        "sum_logit": aggregate.sum_logit_aggregator,
        "mean_odds": aggregate.mean_odds_aggregator,
    }


@hookimpl
def mm_eureka_judges() -> dict[str, Callable[..., Judge]]:
    return {"math_verify": MathVerifyJudge, "openai_compatible": OpenAICompatibleJudge}


@hookimpl
def mm_eureka_rollout_executors() -> dict[str, Callable[..., RolloutExecutor]]:
    return {"single_turn": SingleTurn, "image_tools": ImageTools}
