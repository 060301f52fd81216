"""``openrlhf.trainer.ppo_trainer``: every step's metrics and a few of its samples go to files of
``<ckpt.output_dir>``.

``BasePPOTrainer.train_step`` appends ``plugin.log_samples`` of the step's samples to
``samples.jsonl`` (:mod:`mm_eureka_plugin.samples`), with the advantages OpenRLHF's experience
maker gave them.

``compute_eval_metrics`` groups evaluation samples by the ``datasource`` of their eval row, which
OpenRLHF finds by prompt text alone: rows with the same question and different images (the
synthetic task's colours, ``datasource`` per colour) all got the last row's source. The patched
function finds the row by prompt, images and label, and with more than one source adds
``eval_all_pass1``, pass@1 over every row.

With ``plugin.seeded_sampling``, ``prepare_datasets`` seeds torch with ``train.seed`` first: the
prompt dataloader shuffles with a generator seeded from torch's global one when it is built (the
trainer's process has no distributed sampler), which OpenRLHF leaves unseeded there, so a
repeated run would draw other prompts.

``BasePPOTrainer.save_logs_and_checkpoints`` (after each training step; with dynamic filtering
it adds the filter's group counts, :mod:`mm_eureka_plugin.patches.samples_generator`) and
``save_best_checkpoint`` (after each evaluation) receive the step's metrics; before OpenRLHF's
own logging and checkpointing runs, one line ``{"step", "kind": "train"|"eval", "time",
"metrics"}`` is appended. A line is written before the step's checkpoint, so a run killed in
between redoes that step after ``--resume`` and writes it again: readers keep the last line per
step (:func:`mm_eureka_plugin.plot.read_metrics`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from types import ModuleType, SimpleNamespace

from mm_eureka_plugin.config import PluginConfig
from mm_eureka_plugin.data.records import decode_label
from mm_eureka_plugin.patches.samples_generator import prompt_key, take_filter_counts
from mm_eureka_plugin.plot import METRICS_FILE
from mm_eureka_plugin.samples import append_samples, sample_row, spread


def append_metrics(output_dir: str, step: int, kind: str, logs: dict) -> None:
    """Append the finite numeric entries of ``logs`` as one line of ``output_dir/metrics.jsonl``."""
    metrics = {}
    for key, value in logs.items():
        if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            metrics[key] = float(value)
    os.makedirs(output_dir, exist_ok=True)
    line = json.dumps({"step": int(step), "kind": kind, "time": time.time(), "metrics": metrics})
    with open(os.path.join(output_dir, METRICS_FILE), "a") as out:
        out.write(line + "\n")


def sample_rows(rollout_samples: list, experiences: list, step: int, count: int, tokenizer) -> list[dict]:
    """Rows of ``samples.jsonl`` for ``count`` of a step's ``rollout_samples`` (one sample each),
    spread over them; their advantages come from ``experiences``, the batches OpenRLHF made of
    them (``experience.index``: the samples' positions)."""
    advantages = {}
    for exp in experiences:
        mask = exp.action_mask.float()
        means = (exp.advantages.float() * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        advantages.update(zip(exp.index, means.tolist()))
    rows = []
    for i in spread(count, len(rollout_samples)):
        sample = rollout_samples[i]
        log = getattr(sample, "sample_log", None)
        if log is None:  # not the plugin's executor: the response as the trainer sees it
            tokens = sample.sequences[0, 1:][sample.action_mask[0].bool()]
            log = {"response": tokenizer.decode(tokens, skip_special_tokens=True), "rewards": {}, "error": None}
        _, metadata = decode_label(sample.labels[0])
        row = sample_row(
            step=step,
            prompt_id=None if metadata.get("id") is None else str(metadata["id"]),
            prompt=sample.prompts[0],
            images=sample.images[0] or [],
            response=log["response"],
            rewards=log["rewards"],
            reward=float(sample.rewards[0]),
            advantage=advantages[i],
            reward_error=log["error"],
        )
        rows.append(row)
    return rows


def eval_metrics_by_row(compute_eval_metrics):
    """``compute_eval_metrics`` that finds each sample's datasource by its prompt, images and label."""

    @functools.wraps(compute_eval_metrics)
    def by_row(eval_dataloader, samples_list, n_samples_per_prompt):
        rows = [
            (datasources, [prompt_key(*row) for row in zip(prompts, labels, images)], labels, images)
            for datasources, prompts, labels, images in eval_dataloader
        ]
        samples = [
            SimpleNamespace(
                prompts=[prompt_key(*row) for row in zip(s.prompts, s.labels, s.images)],
                rewards=s.rewards,
                response_length=s.response_length,
                truncated=s.truncated,
            )
            for s in samples_list
        ]
        logs = compute_eval_metrics(rows, samples, n_samples_per_prompt)
        if len({source for batch in rows for source in batch[0]}) > 1 and samples_list:
            rewards = [float(r) for s in samples_list for r in s.rewards]
            logs["eval_all_pass1"] = sum(rewards) / len(rewards)
        return logs

    return by_row


def seeded_datasets(prepare_datasets):
    """``prepare_datasets`` after ``torch.manual_seed(train.seed)`` when ``plugin.seeded_sampling`` is on."""

    @functools.wraps(prepare_datasets)
    def prepare(strategy, tokenizer):
        if PluginConfig.from_env().seeded_sampling:
            import torch

            torch.manual_seed(strategy.args.train.seed)
        return prepare_datasets(strategy, tokenizer)

    return prepare


def patch(module: ModuleType) -> None:
    module.compute_eval_metrics = eval_metrics_by_row(module.compute_eval_metrics)
    module.prepare_datasets = seeded_datasets(module.prepare_datasets)
    trainer = module.BasePPOTrainer
    train_step = trainer.train_step
    save_logs = trainer.save_logs_and_checkpoints
    save_best = trainer.save_best_checkpoint

    @functools.wraps(train_step)
    def train_step_with_samples(self, rollout_samples, global_step):
        count = PluginConfig.from_env().log_samples
        if not count:
            return train_step(self, rollout_samples, global_step)
        maker, made = self.experience_maker, []

        def make_experience_batch(samples):
            batch = type(maker).make_experience_batch(maker, samples)
            made.extend(batch)
            return batch

        maker.make_experience_batch = make_experience_batch  # this step only: the batches it makes
        try:
            status, next_step = train_step(self, rollout_samples, global_step)
        finally:
            del maker.make_experience_batch
        rows = sample_rows(rollout_samples, made, next_step, count, self.tokenizer)
        append_samples(self.args.ckpt.output_dir, rows)
        return status, next_step

    @functools.wraps(save_logs)
    def save_logs_and_checkpoints(self, global_step, logs_dict=None, client_states=None):
        if self.args.algo.dynamic_filtering_enable:
            logs_dict = {**(logs_dict or {}), **take_filter_counts(self.samples_generator)}
        append_metrics(self.args.ckpt.output_dir, global_step, "train", logs_dict or {})
        return save_logs(self, global_step, logs_dict, client_states)

    @functools.wraps(save_best)
    def save_best_checkpoint(self, eval_metrics, global_step, client_states=None):
        if eval_metrics:
            append_metrics(self.args.ckpt.output_dir, global_step, "eval", eval_metrics)
        return save_best(self, eval_metrics, global_step, client_states)

    # @ray.remote copied the base's methods into the actor class it built for PPOTrainer (Ray's
    # tracing wrappers), before this patch ran: set them there too.
    actor_classes = [getattr(obj, "__ray_metadata__", None) for obj in vars(module).values()]
    targets = [trainer] + [m.modified_class for m in actor_classes if m and issubclass(m.modified_class, trainer)]
    for target in targets:
        target.train_step = train_step_with_samples
        target.save_logs_and_checkpoints = save_logs_and_checkpoints
        target.save_best_checkpoint = save_best_checkpoint
