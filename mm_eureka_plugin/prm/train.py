"""``mm-eureka prm train``: MM-PRM's soft-label PRM training, on OpenRLHF's DeepSpeed strategy.

Rows come from ``mm-eureka prm build-data`` (prompt messages, images, steps, the MC value of each
step). The text is the one :class:`~mm_eureka_plugin.prm.scorer.PRMScorer` reads
(:func:`~mm_eureka_plugin.prm.scorer.prm_text`: the tag after every step), and at each tag the
loss is the 2-way cross-entropy of softmax(Yes, No) against the soft target (MC, 1 - MC), averaged
over the tags of the micro-batch (MM-PRM, arXiv 2505.13427). The vision tower is frozen.

The model is OpenRLHF's ``Actor`` (a VLM is loaded as image-text-to-text) trained by its
``DeepspeedStrategy`` (ZeRO stage, bf16, gradient accumulation to ``batch_size``, its optimizer
and scheduler; :mod:`mm_eureka_plugin.patches.prm_training`), so ``torchrun`` or ``deepspeed``
starts one process per GPU; a single process needs no launcher. Without CUDA the CPU patches run it on gloo. A base model without the
``<prm>`` token is first made into a PRM checkpoint (:func:`~mm_eureka_plugin.prm.scorer.make_prm_checkpoint`,
in ``<output_dir>/init``); the result in ``output_dir`` loads directly into ``PRMScorer``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from mm_eureka_plugin.checkpoints import load_processor, model_inputs
from mm_eureka_plugin.config import load_yaml, parse_key_value, reject_unknown_keys
from mm_eureka_plugin.data.images import load_image
from mm_eureka_plugin.errors import UserError
from mm_eureka_plugin.prm.scorer import (
    PRMCheckpointError,
    PRMInput,
    make_prm_checkpoint,
    prm_text,
    prm_token_ids,
    tag_logits,
)

logger = logging.getLogger(__name__)


class PRMTrainError(UserError):
    """A training recipe or data file is unusable; the message names the key or line and the fix."""


@dataclass(frozen=True)
class PRMTrainConfig:
    """A PRM training recipe (see ``recipes/mm-prm-qwen2.5vl-7b.yaml`` for each key's meaning)."""

    model: str
    data: str
    output_dir: str
    lr: float = 2e-6
    batch_size: int = 512
    micro_batch_size: int = 4
    epochs: int = 3
    lr_scheduler: str = "cosine_with_min_lr"
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    max_norm: float = 1.0
    zero_stage: int = 2
    param_dtype: str = "bf16"
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    seed: int = 42
    device: str = "auto"


def load_config(path: str | Path, overrides: list[str] | None = None) -> PRMTrainConfig:
    """The recipe at ``path`` with ``KEY=VALUE`` overrides (values read as YAML); relative paths
    are taken from the recipe's folder. :class:`PRMTrainError` names a missing or unknown key."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PRMTrainError(f"{path}: cannot read the recipe: {exc}") from None
    if not isinstance(data, dict):
        raise PRMTrainError(f"{path}: a PRM training recipe is a mapping of keys to values.")
    data.update(parse_key_value(item, "--set", PRMTrainError) for item in overrides or [])
    reject_unknown_keys(data, [f.name for f in fields(PRMTrainConfig)], str(path), PRMTrainError)
    missing = [key for key in ("model", "data", "output_dir") if not data.get(key)]
    if missing:
        raise PRMTrainError(f"{path}: key '{missing[0]}' is required.")
    for key in ("data", "output_dir"):
        data[key] = str((path.parent / Path(data[key]).expanduser()).resolve())
    if Path(path.parent / data["model"]).exists():  # a local checkpoint, else a hub name
        data["model"] = str((path.parent / data["model"]).resolve())
    config = PRMTrainConfig(**data)
    if config.batch_size % config.micro_batch_size:
        raise PRMTrainError(f"{path}: batch_size {config.batch_size} is not a multiple of micro_batch_size.")
    if config.device not in ("auto", "cuda", "cpu"):
        raise PRMTrainError(f"{path}: device must be auto, cuda or cpu, got {config.device!r}.")
    return config


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a build-data file; :class:`PRMTrainError` naming the line of a malformed one."""
    rows = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PRMTrainError(f"{where}: not valid JSON ({exc.msg}).") from None
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), list):
                raise PRMTrainError(f"{where}: a row needs 'prompt' (chat messages); write rows with prm build-data.")
            steps, labels = row.get("steps"), row.get("labels")
            if not (isinstance(steps, list) and isinstance(labels, list) and steps and len(steps) == len(labels)):
                raise PRMTrainError(f"{where}: 'steps' and 'labels' must be non-empty lists of the same length.")
            if not all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in labels):
                raise PRMTrainError(f"{where}: every label must be a number in [0, 1] (an MC value).")
            rows.append(row)
    if not rows:
        raise PRMTrainError(f"{path}: no rows.")
    return rows


def soft_label_loss(pair_logits, targets):
    """Mean over the tags of the cross-entropy of softmax(Yes, No) (``pair_logits``, ``[tags, 2]``)
    against (target, 1 - target); ``targets`` in tag order."""
    import torch

    pair = pair_logits.float().log_softmax(-1)
    if pair.shape[0] != targets.shape[0]:
        raise ValueError(f"found {pair.shape[0]} tags for {targets.shape[0]} labels")
    soft = torch.stack([targets, 1.0 - targets], dim=-1).to(pair)
    return -(soft * pair).sum(-1).mean()


def train(config: PRMTrainConfig, *, progress: bool = True) -> list[float]:
    """Train a PRM as the module docstring says; returns the loss of every optimizer step (rank 0's)."""
    import torch

    from mm_eureka_plugin.patches.prm_training import StrategyTrainer

    rows = read_rows(config.data)
    if len(rows) < config.batch_size:
        raise PRMTrainError(
            f"{config.data}: {len(rows)} rows make no full optimizer step of batch_size {config.batch_size}; "
            "lower batch_size (and micro_batch_size) or add rows."
        )
    cpu = config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available())
    model_path = config.model
    processor, tokenizer = load_processor(model_path)
    try:
        prm_token_ids(tokenizer, model_path)
    except PRMCheckpointError:  # a base model: add the tag first
        model_path = str(make_prm_checkpoint(model_path, Path(config.output_dir) / "init"))
        processor, tokenizer = load_processor(model_path)
    tag_id, yes_id, no_id = prm_token_ids(tokenizer, model_path)
    tokenizer.padding_side = "right"

    trainer = StrategyTrainer(config, model_path, rows, cpu)
    device = torch.device("cpu") if cpu else torch.device("cuda", torch.cuda.current_device())
    losses, window = [], []
    bar = tqdm(total=trainer.steps_per_epoch * config.epochs, desc="PRM training", unit="step", disable=not progress)
    for epoch in range(config.epochs):
        trainer.set_epoch(epoch)
        for batch in trainer.loader:
            items = [
                PRMInput(row["prompt"], row["steps"], [load_image(ref) for ref in row.get("images", [])])
                for row in batch
            ]
            inputs = model_inputs(
                processor,
                trainer.model.module,
                [prm_text(processor, i) for i in items],
                [im for i in items for im in i.images],
                device,
            )
            targets = torch.tensor([v for row in batch for v in row["labels"]], dtype=torch.float32)
            pair = tag_logits(trainer.model, inputs, tag_id, [yes_id, no_id])
            loss = soft_label_loss(pair, targets.to(device))
            trainer.step(loss)
            window.append(loss.item())
            if len(window) == trainer.accumulation:  # the optimizer has just stepped
                losses.append(sum(window) / len(window))
                window = []
                bar.update()
                bar.set_postfix(loss=f"{losses[-1]:.4f}", epoch=epoch + 1)
    bar.close()
    if trainer.save(processor, config.output_dir):
        Path(config.output_dir, "prm_train.json").write_text(
            json.dumps({"config": asdict(config), "losses": losses}, indent=1) + "\n", encoding="utf-8"
        )
    return losses
