"""CPU-only patches: active only when the run has no CUDA, and changing nothing on GPU.

:func:`install_standins` makes OpenRLHF importable where ``flash_attn`` and ``vllm`` cannot be
installed: an import of either resolves to a small stand-in, and only while the real package is
absent (the stand-in finder sits last on ``sys.meta_path``). The other modules here patch one
OpenRLHF (or torch) module each, as listed in :data:`mm_eureka_plugin.patches.CPU_PATCHES`, so
that OpenRLHF's training loop runs on CPU with :class:`~.vllm_engine.CPURolloutActor` rollouts.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

STANDINS = {
    "flash_attn": "flash_attn_standin",
    "flash_attn.bert_padding": "flash_attn_standin",
    "flash_attn.utils": "flash_attn_standin",
    "flash_attn.utils.distributed": "flash_attn_standin",
    "vllm": "vllm_standin",
    "vllm.inputs": "vllm_standin",
    "vllm.utils": "vllm_standin",
}
"""Module name -> the module of this package that implements it (and its submodules)."""


class _StandinLoader(importlib.abc.Loader):
    def __init__(self, implementation: str) -> None:
        self._implementation = implementation

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        source = importlib.import_module(f"{__name__}.{self._implementation}")
        module.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith("__")})
        module.__doc__ = source.__doc__
        module.__path__ = []  # a package, so that its submodules can be imported
        return module

    def exec_module(self, module) -> None:
        pass


class StandinFinder(importlib.abc.MetaPathFinder):
    """Resolves :data:`STANDINS` names whose real top-level package is not installed."""

    def __init__(self, absent: set[str]) -> None:
        self.absent = absent

    def find_spec(self, fullname, path, target=None):
        if fullname in STANDINS and fullname.partition(".")[0] in self.absent:
            return importlib.util.spec_from_loader(fullname, _StandinLoader(STANDINS[fullname]), is_package=True)
        return None


def install_standins() -> None:
    """Append the stand-in finder for every stand-in package that is not installed (idempotent)."""
    if any(isinstance(f, StandinFinder) for f in sys.meta_path):
        return
    roots = {name.partition(".")[0] for name in STANDINS}
    absent = {root for root in roots if root not in sys.modules and importlib.util.find_spec(root) is None}
    if absent:
        sys.meta_path.append(StandinFinder(absent))
