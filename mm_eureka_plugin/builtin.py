"""The project's own plugin: registers every built-in component through the public hooks."""

from mm_eureka_plugin import hookimpl
from mm_eureka_plugin.data.formats import MMK12Jsonl, MMK12Parquet, OpenRLHFRows
from mm_eureka_plugin.losses import CappedPPOLoss, ClipFilterLikeWeight, CPGDLoss, EqualWeight, StdWeight
from mm_eureka_plugin.rewards import AccuracyReward, FormatReward, WeightedReward


@hookimpl
def mm_eureka_rewards() -> dict:
    return {"accuracy": AccuracyReward, "format": FormatReward, "weighted": WeightedReward}


@hookimpl
def mm_eureka_data_formats() -> dict:
    return {"mmk12": MMK12Jsonl, "mmk12-parquet": MMK12Parquet, "openrlhf": OpenRLHFRows}


@hookimpl
def mm_eureka_policy_losses() -> dict:
    return {"cpgd": CPGDLoss, "ppo": CappedPPOLoss}


@hookimpl
def mm_eureka_advantage_weights() -> dict:
    return {"equal": EqualWeight, "std": StdWeight, "clip_filter_like": ClipFilterLikeWeight}
