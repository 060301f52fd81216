"""``openrlhf.trainer.ray.ppo_actor``: the plugin's policy loss inside ``ActorPPOTrainer``, and
the policy actor's processor.

When the plugin config chooses a ``policy_loss``, ``ActorPPOTrainer.__init__`` replaces
``self.actor_loss_fn`` (OpenRLHF's ``PolicyLoss``) with :class:`PluginPolicyLoss`, and
``training_step`` lets that loss add its metrics to the experience's logged ``info``.

``PolicyModelActor`` passes the raw HF model (which has no ``is_vlm``) to ``get_tokenizer``, so
a VLM's policy actor gets a plain tokenizer and its saved checkpoints lack the processor
(REFERENCE.md section 5, item 11): the module's ``get_tokenizer`` decides from the checkpoint then.
"""

from __future__ import annotations

import functools
from types import ModuleType

import torch

from mm_eureka_plugin.config import PluginConfig

METRIC_PREFIX = "policy_"


class PluginPolicyLoss(torch.nn.Module):
    """OpenRLHF's ``PolicyLoss`` call shape around a plugin ``policy_loss``.

    OpenRLHF's ``aggregate_loss`` returns ``masked_sum / batch_num_tokens * dp_size`` (token mode)
    or ``sum of sequence means / global_batch_size * dp_size`` (sample mode); both counts cover the
    whole optimizer step on all ranks, divided by the accumulation steps. Passing
    ``num_tokens = batch_num_tokens / dp_size`` and ``num_sequences = global_batch_size / dp_size``
    to the plugin loss gives the same normalisation.
    Returns OpenRLHF's 5-tuple ``(loss, clip_ratio, ppo_kl, None, None)``.
    """

    def __init__(self, loss_fn) -> None:
        super().__init__()
        self.loss_fn = loss_fn
        self.info: dict | None = None

    def forward(
        self,
        log_probs: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        action_mask: torch.Tensor | None = None,
        rollout_log_probs: torch.Tensor | None = None,
        dp_size: int = 1,
        batch_num_tokens: torch.Tensor | float | None = None,
        global_batch_size: torch.Tensor | float | None = None,
    ):
        if action_mask is None:
            action_mask = torch.ones_like(log_probs, dtype=torch.bool)
        num_tokens = None if batch_num_tokens is None else batch_num_tokens / dp_size
        num_sequences = None if global_batch_size is None else global_batch_size / dp_size
        loss, metrics = self.loss_fn(
            log_probs, old_log_probs, advantages, action_mask, num_tokens=num_tokens, num_sequences=num_sequences
        )
        mask = action_mask.to(log_probs.dtype)
        tokens = mask.sum().clamp(min=1.0)
        ppo_kl = ((old_log_probs - log_probs).detach() * mask).sum() / tokens
        clip_ratio = metrics.get("clip_frac", torch.zeros((), device=log_probs.device))
        if self.info is not None:
            for key, value in metrics.items():
                self.info[METRIC_PREFIX + key] = torch.as_tensor(value).detach().float().reshape(())
        return loss, clip_ratio.detach(), ppo_kl, None, None


def _checkpoint_get_tokenizer(get_tokenizer):
    @functools.wraps(get_tokenizer)
    def wrapper(pretrain, model, padding_side="left", strategy=None, use_fast=True):
        if model is None or hasattr(model, "is_vlm"):
            return get_tokenizer(pretrain, model, padding_side, strategy, use_fast)
        tokenizer = get_tokenizer(pretrain, None, padding_side, strategy, use_fast)
        if tokenizer.pad_token_id is not None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return tokenizer

    return wrapper


def patch(module: ModuleType) -> None:
    module.get_tokenizer = _checkpoint_get_tokenizer(module.get_tokenizer)
    trainer = module.ActorPPOTrainer
    original_init = trainer.__init__
    original_training_step = trainer.training_step

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        loss_fn = PluginConfig.from_env().build("policy_loss")
        if loss_fn is not None:
            self.actor_loss_fn = PluginPolicyLoss(loss_fn)

    @functools.wraps(original_training_step)
    def training_step(self, experience, *args, **kwargs):
        if not isinstance(self.actor_loss_fn, PluginPolicyLoss):
            return original_training_step(self, experience, *args, **kwargs)
        self.actor_loss_fn.info = experience.info
        try:
            return original_training_step(self, experience, *args, **kwargs)
        finally:
            self.actor_loss_fn.info = None

    trainer.__init__ = __init__
    trainer.training_step = training_step
