"""MM-PRM (arXiv 2505.13427): step splitting, step scores from a process reward model, and their
aggregation."""

from mm_eureka_plugin.prm.aggregate import StepScoreAggregator, check_scores
from mm_eureka_plugin.prm.scorer import (
    PRM_TOKEN,
    PRMCheckpointError,
    PRMInput,
    PRMScorer,
    make_prm_checkpoint,
    tagged_solution,
)
from mm_eureka_plugin.prm.steps import BlankLineSplitter, Step, StepKSplitter, TagSplitter

__all__ = [
    "PRM_TOKEN",
    "BlankLineSplitter",
    "PRMCheckpointError",
    "PRMInput",
    "PRMScorer",
    "Step",
    "StepKSplitter",
    "StepScoreAggregator",
    "TagSplitter",
    "check_scores",
    "make_prm_checkpoint",
    "tagged_solution",
]
