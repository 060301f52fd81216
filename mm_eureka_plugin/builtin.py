"""The project's own plugin: registers every built-in component through the public hooks."""

from mm_eureka_plugin import hookimpl
from mm_eureka_plugin.losses import CappedPPOLoss, ClipFilterLikeWeight, CPGDLoss, EqualWeight, StdWeight


@hookimpl
def mm_eureka_policy_losses() -> dict:
    return {"cpgd": CPGDLoss, "ppo": CappedPPOLoss}


@hookimpl
def mm_eureka_advantage_weights() -> dict:
    return {"equal": EqualWeight, "std": StdWeight, "clip_filter_like": ClipFilterLikeWeight}
