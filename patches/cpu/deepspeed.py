"""``openrlhf.utils.deepspeed.deepspeed`` on CPU: the strategy's device mesh on ``cpu``.

``DeepspeedStrategy.setup_distributed`` builds its (dp, sp, tp) mesh with
``init_device_mesh("cuda", ...)``; on CPU the same mesh is built on ``cpu``. DeepSpeed's CPU
accelerator already initialises torch.distributed with gloo when oneCCL is absent.
"""

from __future__ import annotations

import functools
from types import ModuleType


def patch(module: ModuleType) -> None:
    original = module.init_device_mesh

    @functools.wraps(original)
    def init_device_mesh(device_type, *args, **kwargs):
        return original("cpu", *args, **kwargs)

    module.init_device_mesh = init_device_mesh
