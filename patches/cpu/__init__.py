"""CPU-only patches: active only when the run has no CUDA, and changing nothing on GPU.

:func:`install_standins` makes OpenRLHF and vLLM importable where a package they import cannot be
installed on CPU: an import of a name in :data:`STANDINS` resolves to a small stand-in, and only
while the package it stands in for is absent. The other modules here patch one OpenRLHF (or
torch) module each, as listed in :data:`mm_eureka_plugin.patches.CPU_PATCHES`, so that OpenRLHF's
training loop runs on CPU; :mod:`.vllm_plugin` is what vLLM's own processes load on CPU.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

STANDINS = {
    "flash_attn": ("flash_attn", "flash_attn_standin"),
    "flash_attn.bert_padding": ("flash_attn", "flash_attn_standin"),
    "flash_attn.utils": ("flash_attn", "flash_attn_standin"),
    "flash_attn.utils.distributed": ("flash_attn", "flash_attn_standin"),
    "vllm": ("vllm", "vllm_standin"),
    "vllm.inputs": ("vllm", "vllm_standin"),
    "vllm.utils": ("vllm", "vllm_standin"),
    "transformers.models.qwen2_vl.image_processing_qwen2_vl": ("torchvision", "qwen2_vl_resize_standin"),
}
"""Module name -> (the package whose absence calls for the stand-in, the module of this package
that implements it)."""


class _StandinLoader(importlib.abc.Loader):
    def __init__(self, implementation: str) -> None:
        self._implementation = implementation

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        source = importlib.import_module(f"{__name__}.{self._implementation}")
        module.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith("__") or k == "__version__"})
        module.__doc__ = source.__doc__
        module.__path__ = []  # a package, so that its submodules can be imported
        return module

    def exec_module(self, module) -> None:
        pass


class StandinFinder(importlib.abc.MetaPathFinder):
    """Resolves the :data:`STANDINS` names whose package is not installed (``absent``)."""

    def __init__(self, absent: set[str]) -> None:
        self.absent = absent

    def find_spec(self, fullname, path, target=None):
        if fullname in STANDINS and STANDINS[fullname][0] in self.absent:
            loader = _StandinLoader(STANDINS[fullname][1])
            return importlib.util.spec_from_loader(fullname, loader, is_package=True)
        return None


def install_standins() -> None:
    """Put the stand-in finder first on ``sys.meta_path`` for every stand-in whose package is not
    installed (idempotent); it answers only for those names, so installed packages are untouched."""
    if any(isinstance(f, StandinFinder) for f in sys.meta_path):
        return
    packages = {package for package, _ in STANDINS.values()}
    absent = {p for p in packages if p not in sys.modules and importlib.util.find_spec(p) is None}
    if absent:
        sys.meta_path.insert(0, StandinFinder(absent))
