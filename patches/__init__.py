"""The only code that touches OpenRLHF internals; written for openrlhf==0.11.2.

:func:`install` puts a post-import hook on ``sys.meta_path``: each patched OpenRLHF module is
patched right after it executes, in whatever process imports it (the driver or a Ray worker), and
a module imported before :func:`install` is patched at once. This module imports neither torch nor
OpenRLHF, so it is safe in Ray's ``worker_process_setup_hook``, which runs before Ray sets
``CUDA_VISIBLE_DEVICES``.

Which components the patches use comes from :class:`mm_eureka_plugin.config.PluginConfig`
(the launcher's ``MM_EUREKA_PLUGIN_CONFIG``); with none chosen, OpenRLHF behaves as upstream.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.metadata
import os
import sys
from collections.abc import Callable
from types import ModuleType

SUPPORTED_OPENRLHF = "0.11.2"
DEVICE_ENV = "MM_EUREKA_DEVICE"
"""Set to ``cpu`` by the launcher when the run has no CUDA; switches the CPU patches on."""

PATCHES: dict[str, str] = {
    "openrlhf.trainer.ray.ppo_actor": "ppo_actor",
    "openrlhf.trainer.ppo_utils.experience_maker": "experience_maker",
}
"""OpenRLHF module -> the module of this package whose ``patch(module)`` adapts it."""

_PATCHED_MARK = "__mm_eureka_patched__"


class OpenRLHFVersionError(RuntimeError):
    """The installed OpenRLHF is not the version these patches were written for."""


def check_openrlhf_version() -> str:
    """Return the installed OpenRLHF version, or raise if it is not :data:`SUPPORTED_OPENRLHF`."""
    try:
        version = importlib.metadata.version("openrlhf")
    except importlib.metadata.PackageNotFoundError:
        raise OpenRLHFVersionError(
            f"OpenRLHF is not installed. Install openrlhf=={SUPPORTED_OPENRLHF} "
            f"(`make install`, or `pip install --no-deps openrlhf=={SUPPORTED_OPENRLHF}` on CPU)."
        ) from None
    if version != SUPPORTED_OPENRLHF:
        raise OpenRLHFVersionError(
            f"mm-eureka-plugin patches OpenRLHF internals and was written for openrlhf=="
            f"{SUPPORTED_OPENRLHF}, but openrlhf=={version} is installed. Install "
            f"openrlhf=={SUPPORTED_OPENRLHF}, or a mm-eureka-plugin release written for {version}."
        )
    return version


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then the patch, for one module."""

    def __init__(self, loader: importlib.abc.Loader, patch: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _apply(module, self._patch)

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class PostImportPatcher(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that wraps the loaders of the modules in :data:`PATCHES`."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, _patch_function(fullname))
                return spec
        return None


def _patch_function(module_name: str) -> Callable[[ModuleType], None]:
    return importlib.import_module(f"{__name__}.{PATCHES[module_name]}").patch


def _apply(module: ModuleType, patch: Callable[[ModuleType], None]) -> None:
    if not getattr(module, _PATCHED_MARK, False):
        patch(module)
        setattr(module, _PATCHED_MARK, True)


def is_patched(module: ModuleType) -> bool:
    """Whether :func:`install`'s patch has been applied to ``module``."""
    return getattr(module, _PATCHED_MARK, False)


def install(cpu: bool | None = None) -> None:
    """Install the lazy OpenRLHF patcher in this process (idempotent).

    ``cpu`` switches on the CPU-only patches (stand-ins for packages that need CUDA); by default
    it follows ``MM_EUREKA_DEVICE=cpu``. Raises :class:`OpenRLHFVersionError` for an OpenRLHF
    version these patches were not written for.
    """
    check_openrlhf_version()
    if cpu is None:
        cpu = os.environ.get(DEVICE_ENV) == "cpu"
    if cpu:
        from mm_eureka_plugin.patches.cpu import install_standins

        install_standins()
    if not any(isinstance(f, PostImportPatcher) for f in sys.meta_path):
        sys.meta_path.insert(0, PostImportPatcher())
    for name in PATCHES:
        module = sys.modules.get(name)
        if module is not None:
            _apply(module, _patch_function(name))


def worker_setup_hook() -> None:
    """Ray ``worker_process_setup_hook``: install the patcher in every worker process."""
    install()
