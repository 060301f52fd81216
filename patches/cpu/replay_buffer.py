"""``openrlhf.trainer.ppo_utils.replay_buffer`` on CPU: the buffer's target device is the CPU.

``NaiveReplayBuffer.__init__`` sets ``target_device = cuda:<current device>``.
"""

from __future__ import annotations

import functools
from types import ModuleType


def patch(module: ModuleType) -> None:
    import torch

    buffer = module.NaiveReplayBuffer
    original = buffer.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        current_device = torch.cuda.current_device
        torch.cuda.current_device = lambda: 0  # only formatted into "cuda:0", replaced below
        try:
            original(self, *args, **kwargs)
        finally:
            torch.cuda.current_device = current_device
        self.target_device = torch.device("cpu")

    buffer.__init__ = __init__
