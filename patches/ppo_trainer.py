"""``openrlhf.trainer.ppo_trainer``: every step's metrics also go to ``<ckpt.output_dir>/metrics.jsonl``.

``BasePPOTrainer.save_logs_and_checkpoints`` (after each training step) and
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
from types import ModuleType

METRICS_FILE = "metrics.jsonl"


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


def patch(module: ModuleType) -> None:
    trainer = module.BasePPOTrainer
    save_logs = trainer.save_logs_and_checkpoints
    save_best = trainer.save_best_checkpoint

    @functools.wraps(save_logs)
    def save_logs_and_checkpoints(self, global_step, logs_dict=None, client_states=None):
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
        target.save_logs_and_checkpoints = save_logs_and_checkpoints
        target.save_best_checkpoint = save_best_checkpoint
