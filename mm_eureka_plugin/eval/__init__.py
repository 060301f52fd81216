"""Best-of-N evaluation (pass@1, maj@N, pass@N, and a PRM's picks when one is given) and the
generation of its candidates from a policy checkpoint; nothing here needs a PRM."""

from mm_eureka_plugin.eval.best_of_n import Candidate, Problem, Report, evaluate

__all__ = ["Candidate", "Problem", "Report", "evaluate"]
