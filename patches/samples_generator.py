"""``openrlhf.trainer.ppo_utils.samples_generator``: what travels from rollout to experience, and the filter's counts.

With a dense reward (e.g. ``prm`` with ``mode: dense``) the rollout executor returns
``response["step_rewards"]``: ``(index into the observation tokens, value)`` pairs, one per step.
``SamplesGenerator._process_response_into_experience`` turns them into a per-token tensor aligned
with the sample's ``action_mask`` (action position = observation index - 1, as OpenRLHF shifts
the mask) and keeps it in ``experience.info[STEP_REWARDS]``, which OpenRLHF pads and
concatenates with the other per-sample fields; the experience maker patch takes it out again
and credits it (:mod:`mm_eureka_plugin.patches.experience_maker`).

``SamplesGenerator._generate_vllm`` (one rollout batch, with OpenRLHF's dynamic filtering when
``plugin.accuracy_filter`` is set) also counts the prompt groups the filter kept and dropped, the
dropped ones split by whether their mean score was under or over the range; the counts since the
last training step are ``filter/kept``, ``filter/dropped_low`` and ``filter/dropped_high`` in the
step's metrics (:func:`take_filter_counts`), and each dropped group is logged with its prompt id.

With ``plugin.seeded_sampling`` it also returns the kept groups in the order their prompts were
dispatched rather than the order they finished (:func:`in_dispatch_order`), so that a repeated
run trains on the same batches (the prompts' order: :mod:`mm_eureka_plugin.patches.ppo_trainer`).

The executor's ``response["sample_log"]`` (the decoded response, the reward's components and
error) is kept as the experience's ``sample_log`` attribute for the samples log
(:mod:`mm_eureka_plugin.patches.ppo_trainer`).
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from types import ModuleType

import torch
from openrlhf.utils.logging_utils import init_logger

from mm_eureka_plugin.config import PluginConfig
from mm_eureka_plugin.data.records import decode_label

logger = init_logger(__name__)
"""OpenRLHF's logger setup: INFO lines reach the run's output from its Ray actors."""

STEP_REWARDS = "step_rewards"
"""Key of the step rewards in the executor's output and in ``experience.info``."""
SAMPLE_LOG = "sample_log"
"""Key of the executor's output, and attribute of the experience, with what the samples log shows."""


def per_token_step_rewards(step_rewards: list, action_length: int) -> torch.Tensor:
    """A ``[1, action_length]`` tensor with each value at its token's action position (summed when two
    steps end on one token; steps cut off by truncation are dropped, as their tokens are)."""
    dense = torch.zeros(1, action_length, dtype=torch.float32)
    for index, value in step_rewards:
        position = int(index) - 1
        if 0 <= position < action_length:
            dense[0, position] += float(value)
    return dense


def count_filtered(seen: list, kept: list, n_samples: int, low: float, high: float) -> Counter:
    """Count the groups of ``seen`` (experiences of one sample, ``n_samples`` consecutive ones per
    prompt) that the filter kept (in ``kept``) or dropped (``dropped_low``/``dropped_high``: mean
    score under ``low`` or over ``high``); log each dropped group with its prompt id."""
    counts = Counter()
    kept_ids = {id(exp) for exp in kept}
    for start in range(0, len(seen), n_samples):
        group = seen[start : start + n_samples]
        if id(group[0]) in kept_ids:
            counts["filter/kept"] += 1
            continue
        scores = [float(exp.scores[0]) for exp in group]
        mean = sum(scores) / len(scores)
        side = "low" if mean <= low else "high"
        counts[f"filter/dropped_{side}"] += 1
        prompt_id = decode_label(group[0].labels[0])[1].get("id", "?")
        logger.info("accuracy filter dropped prompt %s: mean score %.3f (%s)", prompt_id, mean, side)
    return counts


def prompt_key(prompt, label, images) -> str:
    """One string for a prompt row: its text, label and images (OpenRLHF's references: paths)."""
    return json.dumps([prompt, label, images], default=str)


def in_dispatch_order(experiences: list, dispatched: list[str], n_samples: int) -> list:
    """``experiences`` (groups of ``n_samples`` consecutive ones) reordered by the position of each
    group's prompt in ``dispatched`` (the prompts' keys in the order they were sent)."""
    position: dict[str, int] = {}
    for index, key in enumerate(dispatched):
        position.setdefault(key, index)
    groups = [experiences[start : start + n_samples] for start in range(0, len(experiences), n_samples)]
    groups.sort(
        key=lambda group: position.get(prompt_key(group[0].prompts[0], group[0].labels[0], group[0].images[0]), -1)
    )
    return [exp for group in groups for exp in group]


def take_filter_counts(generator) -> dict[str, float]:
    """The filter counts of ``generator`` (a ``SamplesGenerator``) since the last call, then reset."""
    counts = getattr(generator, "_mm_eureka_filter_counts", None) or Counter()
    generator._mm_eureka_filter_counts = Counter()
    return {key: float(counts[key]) for key in ("filter/kept", "filter/dropped_low", "filter/dropped_high")}


def patch(module: ModuleType) -> None:
    generator = module.SamplesGenerator
    original = generator._process_response_into_experience
    generate = generator._generate_vllm
    dispatch = generator._dispatch_prompts_to_vllm

    @functools.wraps(dispatch)
    def _dispatch_prompts_to_vllm(self, prompts, labels, *, images=None, **generate_kwargs):
        dispatched = getattr(self, "_mm_eureka_dispatched", None)
        if dispatched is not None:
            dispatched.extend(prompt_key(*row) for row in zip(prompts, labels, images or [None] * len(prompts)))
        return dispatch(self, prompts, labels, images=images, **generate_kwargs)

    @functools.wraps(generate)
    def _generate_vllm(self, dataloader_iter, num_prompts, dynamic_filtering, **generate_kwargs):
        ordered = PluginConfig.from_env().seeded_sampling
        if not dynamic_filtering and not ordered:
            return generate(self, dataloader_iter, num_prompts, dynamic_filtering, **generate_kwargs)
        self._mm_eureka_seen, self._mm_eureka_dispatched = [], [] if ordered else None
        n_samples = generate_kwargs.get("n_samples_per_prompt", self.args.rollout.n_samples_per_prompt)
        try:
            experiences, *rest = generate(self, dataloader_iter, num_prompts, dynamic_filtering, **generate_kwargs)
            if dynamic_filtering:
                low, high = self.args.algo.dynamic_filtering_range
                counts = count_filtered(self._mm_eureka_seen, experiences, n_samples, low, high)
                self._mm_eureka_filter_counts = getattr(self, "_mm_eureka_filter_counts", None) or Counter()
                self._mm_eureka_filter_counts.update(counts)
            if ordered:
                experiences = in_dispatch_order(experiences, self._mm_eureka_dispatched, n_samples)
        finally:
            del self._mm_eureka_seen, self._mm_eureka_dispatched
        return (experiences, *rest)

    @functools.wraps(original)
    def _process_response_into_experience(self, response, **generate_kwargs):
        experience = original(self, response, **generate_kwargs)
        experience.sample_log = response.get(SAMPLE_LOG)
        seen = getattr(self, "_mm_eureka_seen", None)
        if seen is not None:
            seen.append(experience)
        if STEP_REWARDS in response:
            length = experience.action_mask.shape[-1]
            experience.info[STEP_REWARDS] = per_token_step_rewards(response[STEP_REWARDS], length)
        return experience

    generator._process_response_into_experience = _process_response_into_experience
    generator._generate_vllm = _generate_vllm
    generator._dispatch_prompts_to_vllm = _dispatch_prompts_to_vllm
