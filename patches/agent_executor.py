"""The rollout executor OpenRLHF loads from ``--train.agent_func_path``: its single-turn executor
with the plugin's reward, which sees the response text, the images and the row's metadata.

``mm-eureka train`` points ``--train.agent_func_path`` at this file when the recipe chooses a
``plugin.reward``. OpenRLHF executes it as a module in each rollout actor and instantiates
:class:`AgentExecutor` with no arguments. Per sample, it

- forbids the vision special tokens in sampling (vLLM ``logit_bias`` of -inf on each): a policy
  that samples an ``<|image_pad|>`` breaks the training forward ("Image features and image tokens
  do not match");
- generates with OpenRLHF's own ``SingleTurnAgentExecutor.execute`` (no reward endpoint set);
- scores the decoded response (special tokens skipped) with the reward, in a thread (the prompt's
  images decoded for it only when it reads them: ``uses_images``, true unless it says false), and sets
  ``reward``, ``scores`` (the result's ``score``, e.g. accuracy, which OpenRLHF's dynamic filtering
  reads; the reward when the result has none) and ``extra_logs`` (every component, plus
  ``reward_error`` 0/1 so failures are counted in the step metrics);
- with a dense reward (one that has ``dense = True``, e.g. ``prm`` in ``mode: dense``), maps the
  result's ``step_rewards`` (character offsets into the decoded response) to the tokens that end
  those characters and returns them as ``step_rewards`` (observation-token index, value) for
  every sample (empty when the result has none), which :mod:`mm_eureka_plugin.patches.samples_generator`
  carries to the experience maker;
- returns the decoded response, the reward's components and its error message as ``sample_log``
  for the run's samples log (:mod:`mm_eureka_plugin.samples`);
- with ``plugin.seeded_sampling`` (the launcher's ``MM_EUREKA_SAMPLING_SEED``), gives each sample
  its own sampling seed (vLLM's ``SamplingParams.seed``, which the CPU rollout actor honours too):
  a hash of the run's seed, the prompt, its label and image file names, and how many samples of
  that prompt this executor drew before, so a run repeats whatever order requests arrive in.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections import Counter
from copy import deepcopy

from openrlhf.utils.agent import SingleTurnAgentExecutor

from mm_eureka_plugin.checkpoints import vision_logit_bias
from mm_eureka_plugin.config import PluginConfig
from mm_eureka_plugin.data.images import load_image
from mm_eureka_plugin.data.records import decode_label
from mm_eureka_plugin.patches import SAMPLING_SEED_ENV
from mm_eureka_plugin.patches.samples_generator import SAMPLE_LOG, STEP_REWARDS
from mm_eureka_plugin.rewards import RewardResult, RewardSample, score_samples

logger = logging.getLogger(__name__)

ERROR_KEY = "reward_error"
SECONDS_KEY = "reward_seconds"
"""Per-sample log of the seconds its reward took in its thread (images loaded included; the wait
for a free thread not included: summed over a step, the time its threads spent scoring)."""
RESERVED_KEYS = ("reward", "score", "response_clip_ratio")
"""Per-sample info keys OpenRLHF sets itself: a reward component of that name is logged as ``reward_<name>``."""


def _probe_sample() -> RewardSample:
    return RewardSample(response="<think>1 + 1 = 2</think><answer>2</answer>", label="2")


def step_end_tokens(tokenizer, token_ids: list[int], offsets: list[int]) -> list[int]:
    """For each character offset ``end`` of ``tokenizer.decode(token_ids, skip_special_tokens=True)``,
    the index of the token whose decoding reaches character ``end - 1``: the first n with
    ``len(decode(token_ids[:n])) >= end``, minus one (a binary search, about log2(len) decodes each)."""
    lengths: dict[int, int] = {}

    def decoded(n: int) -> int:
        if n not in lengths:
            lengths[n] = len(tokenizer.decode(token_ids[:n], skip_special_tokens=True))
        return lengths[n]

    indices = []
    for end in offsets:
        low, high = 1, len(token_ids)
        while low < high:
            middle = (low + high) // 2
            if decoded(middle) >= end:
                high = middle
            else:
                low = middle + 1
        indices.append(max(low - 1, 0))
    return indices


class AgentExecutor(SingleTurnAgentExecutor):
    """OpenRLHF's single-turn rollout with the plugin reward (built from ``MM_EUREKA_PLUGIN_CONFIG``)."""

    def __init__(self) -> None:
        super().__init__(remote_rm_url=None)
        self.reward = PluginConfig.from_env().build("reward")
        if self.reward is None:
            raise RuntimeError(f"{__file__} is the plugin's reward executor, but the plugin config chooses no reward.")
        # OpenRLHF concatenates per-sample logs over the batch: every sample must log the same keys.
        self.component_keys = sorted(score_samples(self.reward, [_probe_sample()])[0].components)
        self.dense = getattr(self.reward, "dense", False)
        self.uses_images = getattr(self.reward, "uses_images", True)
        self._banned: dict[int, float] | None = None
        seed = os.environ.get(SAMPLING_SEED_ENV)
        self.run_seed = None if seed is None else int(seed)
        self.drawn: Counter[str] = Counter()

    def _sampling_params(self, sampling_params, hf_tokenizer, prompt, label, images):
        if self._banned is None:
            self._banned = vision_logit_bias(hf_tokenizer)
        params = deepcopy(sampling_params)
        params.logit_bias = {**(getattr(params, "logit_bias", None) or {}), **self._banned}
        if self.run_seed is not None:
            params.seed = self.sample_seed(prompt, label, images)
        return params

    def sample_seed(self, prompt, label, images) -> int:
        """The next sample's seed for this prompt: from the run's seed, the prompt, label and image
        file names (not paths: a run's converted images live in its own directory), and the count
        of its samples drawn before (called before the first ``await`` of a sample, so the n
        samples of a group count in the order OpenRLHF starts them)."""
        refs = images if isinstance(images, list) else [images]
        names = [os.path.basename(ref) if isinstance(ref, str) else str(ref) for ref in refs]
        key = json.dumps([prompt, label, names])
        index = self.drawn[key]
        self.drawn[key] += 1
        digest = hashlib.sha256(f"{self.run_seed}\0{index}\0{key}".encode()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        params = self._sampling_params(sampling_params, hf_tokenizer, prompt, label, images)
        output = await super().execute(prompt, label, params, max_length, hf_tokenizer, llm_engine, images=images)
        start, end = output["action_ranges"][0]
        response_ids = output["observation_tokens"][start:end]
        response = hf_tokenizer.decode(response_ids, skip_special_tokens=True)
        answer, metadata = decode_label(label)
        result, seconds = await asyncio.to_thread(self._score, response, answer, prompt, images, metadata)
        logs = self._logs(result, metadata)
        logs[SECONDS_KEY] = seconds
        output.update(
            reward=result.reward, scores=result.reward if result.score is None else result.score, extra_logs=logs
        )
        output[SAMPLE_LOG] = {"response": response, "rewards": dict(result.components), "error": result.error}
        if self.dense:
            ends = step_end_tokens(hf_tokenizer, response_ids, [offset for offset, _ in result.step_rewards or []])
            output[STEP_REWARDS] = [(start + i, value) for i, (_, value) in zip(ends, result.step_rewards or [])]
        return output

    def _score(self, response: str, answer: str, prompt: str, images, metadata: dict) -> tuple[RewardResult, float]:
        """The reward's result and the seconds it took."""
        start = time.perf_counter()
        return self._result(response, answer, prompt, images, metadata), time.perf_counter() - start

    def _result(self, response: str, answer: str, prompt: str, images, metadata: dict) -> RewardResult:
        refs = images if isinstance(images, list) else ([] if images is None else [images])
        try:
            pil_images = [load_image(ref) for ref in refs if ref is not None] if self.uses_images else []
        except Exception as exc:  # the prompt's images were loaded for generation; this is a late failure
            return RewardResult(reward=0.0, error=f"cannot load the prompt's images for the reward: {exc}")
        sample = RewardSample(response=response, label=answer, prompt=prompt, images=pil_images, metadata=metadata)
        return score_samples(self.reward, [sample])[0]

    def _logs(self, result: RewardResult, metadata: dict) -> dict[str, float]:
        if result.error is not None:
            logger.warning("reward error on row %s: %s", metadata.get("id", "?"), result.error)
        logs = {
            f"reward_{key}" if key in RESERVED_KEYS else key: float(result.components.get(key, 0.0))
            for key in self.component_keys
        }
        logs[ERROR_KEY] = float(result.error is not None)
        return logs
