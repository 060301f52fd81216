"""The rollout executor OpenRLHF loads from ``--train.agent_func_path``: its single-turn executor,
continued by the plugin's rollout executor, with the plugin's reward, which sees the response text,
the images and the row's metadata.

``mm-eureka train`` points ``--train.agent_func_path`` at this file when the recipe chooses a
``plugin.reward``. OpenRLHF executes it as a module in each rollout actor and instantiates
:class:`AgentExecutor` with no arguments. Per sample, it

- forbids the vision special tokens in sampling (vLLM ``logit_bias`` of -inf on each): a policy
  that samples an ``<|image_pad|>`` breaks the training forward ("Image features and image tokens
  do not match");
- generates with OpenRLHF's own ``SingleTurnAgentExecutor.execute`` (no reward endpoint set);
- with a ``plugin.rollout_executor`` other than ``single_turn``, continues the sample
  (:class:`Episode`): the executor's episode answers each response, its message is appended in the
  model's chat template (images processed as the prompt's were, added to the training inputs) and
  the policy responds again, until the episode is done or ``max_length`` is spent; only generated
  tokens are actions. The last response is scored; an episode that raises gives the sample reward
  0 and ``reward_error``. The turns' metrics (the executor's ``metric_keys``) join ``extra_logs``;
- scores the last decoded response (special tokens skipped) with the reward, in a thread (the
  prompt's images decoded for it only when it reads them: ``uses_images``, true unless it says
  false), and sets
  ``reward``, ``scores`` (the result's ``score``, e.g. accuracy, which OpenRLHF's dynamic filtering
  reads; the reward when the result has none) and ``extra_logs`` (every component, plus
  ``reward_error`` 0/1 so failures are counted in the step metrics);
- with a dense reward (one that has ``dense = True``, e.g. ``prm`` in ``mode: dense``), maps the
  result's ``step_rewards`` (character offsets into the decoded response) to the tokens that end
  those characters and returns them as ``step_rewards`` (observation-token index, value) for
  every sample (empty when the result has none), which :mod:`mm_eureka_plugin.patches.samples_generator`
  carries to the experience maker;
- returns the decoded responses (with the turns between them), the reward's components and its
  error message as ``sample_log`` for the run's samples log (:mod:`mm_eureka_plugin.samples`);
- with ``plugin.seeded_sampling`` (the launcher's ``MM_EUREKA_SAMPLING_SEED``), gives each sample
  its own sampling seed (vLLM's ``SamplingParams.seed``, which the CPU rollout actor honours too):
  a hash of the run's seed, the prompt, its label and image file names, and how many samples of
  that prompt this executor drew before, so a run repeats whatever order requests arrive in.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import time
from collections import Counter
from copy import deepcopy

from openrlhf.utils import vlm_utils
from openrlhf.utils.agent import SingleTurnAgentExecutor

from mm_eureka_plugin.checkpoints import vision_logit_bias
from mm_eureka_plugin.config import PluginConfig
from mm_eureka_plugin.data.convert import SOURCE_IMAGES
from mm_eureka_plugin.data.images import MAX_PIXELS, MIN_PIXELS, load_image
from mm_eureka_plugin.data.records import decode_label
from mm_eureka_plugin.patches import SAMPLING_SEED_ENV
from mm_eureka_plugin.patches.samples_generator import SAMPLE_LOG, STEP_REWARDS
from mm_eureka_plugin.rewards import RewardResult, RewardSample, score_samples
from mm_eureka_plugin.rollouts import RolloutPrompt, SingleTurn, Turn, continuation

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
    """OpenRLHF's single-turn rollout, continued by the plugin's rollout executor, scored by the plugin
    reward (both built from ``MM_EUREKA_PLUGIN_CONFIG``)."""

    def __init__(self) -> None:
        super().__init__(remote_rm_url=None)
        config = PluginConfig.from_env()
        self.reward = config.build("reward")
        if self.reward is None:
            raise RuntimeError(f"{__file__} is the plugin's reward executor, but the plugin config chooses no reward.")
        self.rollout = config.build("rollout_executor") or SingleTurn()
        self.rollout_name = "single_turn" if config.rollout_executor is None else config.rollout_executor.name
        self.budget = (
            (MIN_PIXELS, MAX_PIXELS) if config.data is None else (config.data.min_pixels, config.data.max_pixels)
        )
        # OpenRLHF concatenates per-sample logs over the batch: every sample must log the same keys.
        self.component_keys = sorted(score_samples(self.reward, [_probe_sample()])[0].components)
        self.rollout_keys = tuple(getattr(self.rollout, "metric_keys", ()))
        taken = set(self.component_keys) | {ERROR_KEY, SECONDS_KEY, *RESERVED_KEYS}
        if clash := sorted(taken.intersection(self.rollout_keys)):
            raise RuntimeError(
                f"rollout executor {self.rollout_name!r} logs metrics named {clash}, which the reward's components "
                "or the executor already log: rename them."
            )
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
        return _seed(f"{self.run_seed}\0{index}\0{key}")

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        params = self._sampling_params(sampling_params, hf_tokenizer, prompt, label, images)
        output = await super().execute(prompt, label, params, max_length, hf_tokenizer, llm_engine, images=images)
        answer, metadata = decode_label(label)
        rollout_error, rollout_metrics = None, dict.fromkeys(self.rollout_keys, 0.0)
        if not isinstance(self.rollout, SingleTurn):
            episode = Episode(self, output, params, max_length, hf_tokenizer, llm_engine)
            rollout_error = await episode.run(prompt, answer, metadata, images, rollout_metrics)
        start, end = output["action_ranges"][-1]
        response_ids = output["observation_tokens"][start:end]
        response = hf_tokenizer.decode(response_ids, skip_special_tokens=True)
        if rollout_error is None:
            result, seconds = await asyncio.to_thread(self._score, response, answer, prompt, images, metadata)
        else:
            logger.warning("rollout error on row %s: %s", metadata.get("id", "?"), rollout_error)
            result, seconds = RewardResult(reward=0.0, error=rollout_error), 0.0
        logs = self._logs(result, metadata)
        logs[SECONDS_KEY] = seconds
        logs.update(rollout_metrics)
        output.update(
            reward=result.reward, scores=result.reward if result.score is None else result.score, extra_logs=logs
        )
        first = output["action_ranges"][0][0]
        shown = (
            response
            if len(output["action_ranges"]) == 1
            else hf_tokenizer.decode(output["observation_tokens"][first:end], skip_special_tokens=True)
        )
        output[SAMPLE_LOG] = {"response": shown, "rewards": dict(result.components), "error": result.error}
        if self.dense:
            ends = step_end_tokens(hf_tokenizer, response_ids, [offset for offset, _ in result.step_rewards or []])
            output[STEP_REWARDS] = [(start + i, value) for i, (_, value) in zip(ends, result.step_rewards or [])]
        return output

    def _score(self, response: str, answer: str, prompt: str, images, metadata: dict) -> tuple[RewardResult, float]:
        """The reward's result and the seconds it took."""
        start = time.perf_counter()
        return self._result(response, answer, prompt, images, metadata), time.perf_counter() - start

    def _result(self, response: str, answer: str, prompt: str, images, metadata: dict) -> RewardResult:
        try:
            pil_images = _load_images(images) if self.uses_images else []
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


def _seed(key: str) -> int:
    """A sampling seed (31 bits) from ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") & 0x7FFFFFFF


def _load_images(images) -> list:
    refs = images if isinstance(images, list) else ([] if images is None else [images])
    return [load_image(ref) for ref in refs if ref is not None]


class Episode:
    """The turns after a sample's first response: the plugin's rollout executor answers each
    response, and its message is appended (written by the model's chat template, images processed as
    the prompt's were) and the policy generates again, until the executor is done or the sample's
    ``max_length`` tokens are spent. Only generated tokens are actions (OpenRLHF's
    ``action_ranges``); images accumulate in ``mm_train_inputs`` in the order of their tokens."""

    def __init__(self, executor: AgentExecutor, output: dict, params, max_length: int, processor, engine) -> None:
        self.executor, self.output, self.params = executor, output, params
        self.max_length, self.processor, self.engine = max_length, processor, engine

    async def run(self, prompt: str, answer: str, metadata: dict, images, metrics: dict[str, float]) -> str | None:
        """Run the turns, adding the turns' metrics to ``metrics``; the error that ended the sample, or None."""
        executor, output = self.executor, self.output
        try:
            shown = await asyncio.to_thread(_load_images, images)
            sources = metadata.get(SOURCE_IMAGES)
            sources = await asyncio.to_thread(_load_images, sources) if sources else shown
        except Exception as exc:
            return f"cannot load the prompt's images for rollout executor {executor.rollout_name!r}: {exc}"
        start = RolloutPrompt(prompt, shown, sources, answer, metadata, *executor.budget)
        try:
            episode = await asyncio.to_thread(executor.rollout.start, start)
        except Exception as exc:
            return f"rollout executor {executor.rollout_name!r} raised {type(exc).__name__} in start: {exc}"
        for turn_index in itertools.count(1):
            begin, end = output["action_ranges"][-1]
            action = output["observation_tokens"][begin:end]
            try:
                turn = await asyncio.to_thread(episode.step, self.processor.decode(action, skip_special_tokens=True))
                problem = (
                    turn.problem() if isinstance(turn, Turn) else f"it returned a {type(turn).__name__}, not a Turn"
                )
            except Exception as exc:
                return f"rollout executor {executor.rollout_name!r} raised {type(exc).__name__} in step: {exc}"
            if problem is not None:
                return f"rollout executor {executor.rollout_name!r} gave a turn that cannot be shown: {problem}"
            for key in executor.rollout_keys:
                metrics[key] += float(turn.metrics.get(key, 0.0))
            if turn.done:
                return None
            try:
                message = self._message(turn, self.processor.decode(action))
            except Exception as exc:
                return f"rollout executor {executor.rollout_name!r} gave a turn that cannot be written: {exc}"
            if not await self._respond(*message, turn_index, shown):
                return None

    def _message(self, turn: Turn, action_text: str) -> tuple[list[int], dict | None, list]:
        """``turn``'s message after the response ``action_text``: its tokens, its images' training
        inputs (None without images) and the images as the engine gets them."""
        text = continuation(self.processor, action_text, turn.content)
        if turn.images:
            return vlm_utils.process_prompt_with_images(self.processor, text, turn.images)
        tokens = self.processor(text=text, add_special_tokens=False, return_tensors="pt")["input_ids"][0].tolist()
        return tokens, None, []

    async def _respond(
        self, tokens: list[int], inputs: dict | None, images: list, turn_index: int, shown: list
    ) -> bool:
        """Append a message (``tokens``, its training ``inputs`` and ``images``) and generate the next
        response; False when the sample's token budget has no room for them (the sample is then
        marked truncated)."""
        output = self.output
        observation = output["observation_tokens"]
        room = self.max_length - len(observation) - len(tokens)
        if room <= 0:
            output["truncated"] = True
            return False
        observation = observation + tokens
        shown.extend(images)
        output["mm_train_inputs"] = vlm_utils.accumulate_mm_inputs(output["mm_train_inputs"], inputs)
        params = deepcopy(self.params)
        params.max_tokens = min(params.max_tokens or room, room)
        if getattr(params, "seed", None) is not None:
            params.seed = _seed(f"{params.seed}\0turn {turn_index}")
        request = await self.engine.generate(observation, params, multi_modal_data={"image": shown} if shown else None)
        generated = request.outputs[0]
        output["action_ranges"].append((len(observation), len(observation) + len(generated.token_ids)))
        output["observation_tokens"] = observation + list(generated.token_ids)
        output["truncated"] = generated.finish_reason == "length"
        if output["rollout_log_probs"] is not None:
            output["rollout_log_probs"].extend([0.0] * len(tokens))
            for token, logprobs in zip(generated.token_ids, generated.logprobs or [{}] * len(generated.token_ids)):
                logprob = logprobs.get(token)
                output["rollout_log_probs"].append(logprob.logprob if logprob is not None else 0.0)
        return True
