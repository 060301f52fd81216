"""Policy losses and advantage weights as pure torch functions (no OpenRLHF objects)."""

from mm_eureka_plugin.losses.advantage_weights import ClipFilterLikeWeight, EqualWeight, StdWeight
from mm_eureka_plugin.losses.cpgd import CPGDLoss
from mm_eureka_plugin.losses.ppo import CappedPPOLoss

__all__ = ["CPGDLoss", "CappedPPOLoss", "ClipFilterLikeWeight", "EqualWeight", "StdWeight"]
