"""Rewards: the sample/result types, math accuracy, think/answer format, weighted composition, and the PRM."""

from mm_eureka_plugin.rewards.accuracy import AccuracyReward
from mm_eureka_plugin.rewards.format import FormatReward
from mm_eureka_plugin.rewards.prm import PRMReward
from mm_eureka_plugin.rewards.score import ScoreFileError, score_file
from mm_eureka_plugin.rewards.types import RewardResult, RewardSample, as_result, score_samples
from mm_eureka_plugin.rewards.weighted import WeightedReward

__all__ = [
    "AccuracyReward",
    "FormatReward",
    "PRMReward",
    "RewardResult",
    "RewardSample",
    "ScoreFileError",
    "WeightedReward",
    "as_result",
    "score_file",
    "score_samples",
]
