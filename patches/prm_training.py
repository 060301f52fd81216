"""PRM training on OpenRLHF 0.11.2's ``DeepspeedStrategy`` and ``Actor``, for
:func:`mm_eureka_plugin.prm.train.train` (which owns the data, the loss and the loop).

``get_strategy`` reads a namespace shaped like ``train_ppo_ray``'s parsed flags; :func:`strategy_args`
builds the fields it reads from the PRM recipe. The strategy brings ZeRO, bf16, gradient
accumulation to ``batch_size``, the optimizer and scheduler, and ``torchrun``/``deepspeed``
launching (one process per GPU; a single process needs no launcher).
"""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace
from typing import Any

from mm_eureka_plugin.patches import install


def strategy_args(config: Any) -> SimpleNamespace:
    """The fields of OpenRLHF's arguments its ``DeepspeedStrategy`` reads, from a ``PRMTrainConfig``."""
    return SimpleNamespace(
        local_rank=-1,
        max_norm=config.max_norm,
        optim="adam",
        train=SimpleNamespace(seed=config.seed, micro_batch_size=config.micro_batch_size, batch_size=config.batch_size),
        ds=SimpleNamespace(
            zero_stage=config.zero_stage,
            param_dtype=config.param_dtype,
            tensor_parallel_size=1,
            ring_attn_size=1,
            attn_implementation=config.attn_implementation,
        ),
    )


def single_process_env() -> None:
    """torch.distributed's variables for one process, unless a launcher set them."""
    if "RANK" in os.environ:
        return
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


class StrategyTrainer:
    """One model (vision tower frozen) trained by OpenRLHF's strategy on ``rows``, ``epochs`` times.

    ``loader`` yields micro-batches (lists of rows, this rank's share); ``model`` is the engine to
    run forward (``model.module`` the HF model); :meth:`step` takes one micro-batch's loss, and the
    optimizer steps every ``accumulation`` micro-batches.
    """

    def __init__(self, config: Any, model_path: str, rows: list[dict], cpu: bool) -> None:
        install(cpu=cpu)
        single_process_env()
        from openrlhf.models import Actor
        from openrlhf.utils import get_strategy

        self.strategy = get_strategy(strategy_args(config))
        self.strategy.setup_distributed()
        actor = Actor(
            model_path,
            attn_implementation=config.attn_implementation,
            param_dtype=config.param_dtype,
            ds_config=self.strategy.get_ds_train_config(),
            freeze_visual_encoder=True,
        )
        if config.gradient_checkpointing:
            actor.gradient_checkpointing_enable()
        self.loader = self.strategy.setup_dataloader(rows, config.micro_batch_size, True, True, collate_fn=list)
        self.accumulation = self.strategy.accumulated_gradient
        self.steps_per_epoch = len(self.loader) // self.accumulation
        optimizer = {
            "optim": "adam",
            "adam": {"lr": config.lr, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": config.weight_decay},
            "muon": {},
            "lr_scheduler": config.lr_scheduler,
            "lr_warmup_ratio": config.warmup_ratio,
            "min_lr_ratio": config.min_lr_ratio,
            "max_norm": config.max_norm,
            "scheduler_steps": self.steps_per_epoch * config.epochs,
        }
        self.actor, _, _ = self.strategy.prepare((actor, optimizer))
        self.model = self.actor.model

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle the loader for ``epoch`` (a distributed sampler's seed)."""
        if hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(epoch)

    def step(self, loss: Any) -> None:
        """Backward ``loss`` and let the optimizer step when the accumulation is complete."""
        self.strategy.backward(loss, self.actor, None)
        self.strategy.optimizer_step(None, self.actor, None)

    def save(self, processor: Any, output_dir: str) -> bool:
        """Save the model with ``processor`` to ``output_dir``; whether this process is rank 0."""
        self.strategy.save_model(self.actor, processor, output_dir)
        return self.strategy.is_rank_0()
