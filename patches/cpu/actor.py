"""``openrlhf.models.actor`` on CPU: a ZeRO-3 actor loads whole, then DeepSpeed partitions it.

With ``ds.zero_stage: 3``, ``Actor.__init__`` loads the model under transformers' ``zero.Init``
(``HfDeepSpeedConfig``). On CPU with two gloo ranks the tiny Qwen2.5-VL then ran wrong: in one of
four loads some vision weights held uninitialised memory, and even when every gathered parameter
and buffer equalled the checkpoint's, its logits were NaN or off a plain forward's. Loaded whole
and partitioned by ``deepspeed.initialize``, it matched a plain forward in every run. CPU models
are small, so loading them whole costs nothing.
"""

from __future__ import annotations

from types import ModuleType


def patch(module: ModuleType) -> None:
    module.HfDeepSpeedConfig = lambda ds_config: None
