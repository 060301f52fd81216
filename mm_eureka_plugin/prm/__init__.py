"""MM-PRM (arXiv 2505.13427): step splitting, step scores from a process reward model, their
aggregation, and Best-of-N evaluation."""

from mm_eureka_plugin.prm.aggregate import StepScoreAggregator, check_scores
from mm_eureka_plugin.prm.best_of_n import Candidate, Problem, Report, evaluate
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
    "Candidate",
    "PRMCheckpointError",
    "PRMInput",
    "PRMScorer",
    "Problem",
    "Report",
    "Step",
    "StepKSplitter",
    "StepScoreAggregator",
    "TagSplitter",
    "check_scores",
    "evaluate",
    "make_prm_checkpoint",
    "tagged_solution",
]
