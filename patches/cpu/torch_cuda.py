"""``torch.cuda`` on CPU: the calls OpenRLHF 0.11.2 makes unconditionally, made harmless.

OpenRLHF's actors and strategy call ``torch.cuda.current_device()`` (as a tensor's device),
``synchronize()``, ``current_stream()``, ``set_device()`` and ``empty_cache()`` on every step
(REFERENCE.md section 5, item 4). In a process of a CPU run they become: the CPU device, no-ops,
and no stream. ``torch.cuda.is_available()`` still answers False, so code that asks keeps working.
"""

from __future__ import annotations

from types import ModuleType


def patch(module: ModuleType) -> None:
    """Patch ``torch.cuda`` once ``torch`` (``module``) has finished importing."""
    cuda = module.cuda
    cpu = module.device("cpu")
    cuda.current_device = lambda: cpu
    cuda.set_device = lambda device: None
    cuda.synchronize = lambda device=None: None
    cuda.current_stream = lambda device=None: None
    cuda.empty_cache = lambda: None
