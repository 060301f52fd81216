"""The only code that knows OpenRLHF (its internals, flags and launch); written for openrlhf==0.11.2.

:func:`install` puts a post-import hook on ``sys.meta_path``: each patched OpenRLHF module is
patched right after it executes, in whatever process imports it (the driver or a Ray worker), and
a module imported before :func:`install` is patched at once. This module imports neither torch nor
OpenRLHF, so it is safe in Ray's ``worker_process_setup_hook``, which runs before Ray sets
``CUDA_VISIBLE_DEVICES``. Which components the patches use comes from
:class:`mm_eureka_plugin.config.PluginConfig` (the launcher's ``MM_EUREKA_PLUGIN_CONFIG``).

The life of one training step, and the file that changes each part of it:

0. launch (once): :mod:`.launch` checks the recipe (:mod:`.flags`, flags parsed by OpenRLHF's own
   parser in :mod:`.train_ppo_ray`), starts Ray with this patcher in every worker and runs
   ``train_ppo_ray``; on CPU, :mod:`.cpu` makes the same loop run without CUDA.
1. rollout: the rollout actors generate n samples per prompt; a prompt's images are processed once
   per group (:mod:`.vllm_engine`, :mod:`.vlm_utils`; always on), vLLM resizes them by the recipe's
   pixel budget (:mod:`.vllm_engine`), and each sample runs through the plugin's executor
   (:mod:`.agent_executor`, loaded by OpenRLHF from ``--train.agent_func_path``), which bans the
   vision tokens in sampling, continues the sample through ``plugin.rollout_executor``'s turns and,
   with ``plugin.seeded_sampling``, seeds each sample.
2. reward: the executor scores each response with ``plugin.reward`` (:mod:`.agent_executor`);
   a dense reward's step rewards become per-token offsets.
3. filter: OpenRLHF's dynamic filtering keeps the groups whose mean accuracy is in
   ``plugin.accuracy_filter`` (flags set by :mod:`.flags`); :mod:`.samples_generator` counts the
   kept and dropped groups and, with ``plugin.seeded_sampling``, keeps them in dispatch order.
4. experience: step rewards ride on each experience (:mod:`.samples_generator`); OpenRLHF computes
   log-probs, the baselined rewards and returns, adding the step rewards per token
   (:mod:`.experience_maker`).
5. advantage weights: ``plugin.advantage_weight`` scales the advantages over the batch's reward
   matrix (:mod:`.experience_maker`).
6. loss: ``plugin.policy_loss`` replaces OpenRLHF's policy loss (:mod:`.ppo_actor`, which also gives
   the policy actor its processor; always on).
7. sync: the trainer broadcasts the new weights to the rollout engines (upstream on GPU; on CPU a
   gloo group, :mod:`.cpu.ppo_actor` and :mod:`.cpu.vllm_worker`).
8. metrics: each step's metrics also go to ``<ckpt.output_dir>/metrics.jsonl``, a few of its
   samples to ``samples.jsonl``, and evaluations are counted per datasource (:mod:`.ppo_trainer`;
   always on).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.metadata
import os
import sys
from types import ModuleType

from mm_eureka_plugin.errors import UserError

SUPPORTED_OPENRLHF = "0.11.2"
DEVICE_ENV = "MM_EUREKA_DEVICE"
"""Set to ``cpu`` by the launcher when the run has no CUDA; switches the CPU patches on."""
SAMPLING_SEED_ENV = "MM_EUREKA_SAMPLING_SEED"
"""The run's seed (``train.seed``), set by the launcher with ``plugin.seeded_sampling``: the rollout
executor derives each sample's seed from it."""

PATCHES: dict[str, tuple[str, ...]] = {
    # 1. rollout: images resized by the pixel budget, processed once per group of samples
    "openrlhf.trainer.ray.vllm_engine": ("vllm_engine",),
    "openrlhf.utils.vlm_utils": ("vlm_utils",),
    # 3-4. filter counts and order; step rewards and sample logs carried to the experience
    "openrlhf.trainer.ppo_utils.samples_generator": ("samples_generator",),
    # 4-5. experience: step rewards credited per token; advantage weights
    "openrlhf.trainer.ppo_utils.experience_maker": ("experience_maker",),
    # 6. loss: the plugin's policy loss; the policy actor's processor
    "openrlhf.trainer.ray.ppo_actor": ("ppo_actor",),
    # 8. metrics: metrics.jsonl, samples.jsonl, eval per datasource
    "openrlhf.trainer.ppo_trainer": ("ppo_trainer",),
}
"""Module -> the modules of this package whose ``patch(module)`` adapt it, on every device; in the
order of the step (module docstring)."""

CPU_PATCHES: dict[str, tuple[str, ...]] = {
    "torch": ("cpu.torch_cuda",),
    "openrlhf.utils.utils": ("cpu.processor",),
    "openrlhf.utils.deepspeed.deepspeed": ("cpu.deepspeed",),
    "openrlhf.models.actor": ("cpu.actor",),
    "openrlhf.trainer.ppo_utils.replay_buffer": ("cpu.replay_buffer",),
    "openrlhf.trainer.ray.ppo_actor": ("cpu.ppo_actor",),
    "openrlhf.trainer.ray.vllm_engine": ("cpu.vllm_engine",),
}
"""Module -> patches that run OpenRLHF's loop on CPU (REFERENCE.md section 5); only with ``cpu``."""

VLLM_CPU_PATCHES: dict[str, tuple[str, ...]] = {
    "vllm.model_executor.models.qwen2_5_vl": ("cpu.vllm_processor",),
}
"""Module -> patches that vLLM's own processes need on CPU, installed by :mod:`.cpu.vllm_plugin`."""

_PATCHED_MARK = "__mm_eureka_patched__"


class OpenRLHFVersionError(UserError):
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
    """Runs the real loader, then the patches, for one module."""

    def __init__(self, loader: importlib.abc.Loader, patch_names: tuple[str, ...]) -> None:
        self._loader = loader
        self._patch_names = patch_names

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _apply(module, self._patch_names)

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class PostImportPatcher(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that wraps the loaders of the modules in ``active``."""

    def __init__(self) -> None:
        self.active: dict[str, tuple[str, ...]] = {}

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.active:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, self.active[fullname])
                return spec
        return None


def _apply(module: ModuleType, patch_names: tuple[str, ...]) -> None:
    applied = module.__dict__.setdefault(_PATCHED_MARK, [])
    for name in patch_names:
        if name not in applied:
            importlib.import_module(f"{__name__}.{name}").patch(module)
            applied.append(name)


def is_patched(module: ModuleType, patch_name: str | None = None) -> bool:
    """Whether :func:`install` has patched ``module`` (with ``patch_name``, when given)."""
    applied = getattr(module, _PATCHED_MARK, [])
    return bool(applied) if patch_name is None else patch_name in applied


def install(cpu: bool | None = None) -> None:
    """Install the lazy OpenRLHF patcher in this process (idempotent).

    ``cpu`` adds the CPU-only patches (stand-ins for packages that need CUDA, and
    :data:`CPU_PATCHES`); by default it follows ``MM_EUREKA_DEVICE=cpu``. Raises
    :class:`OpenRLHFVersionError` for an OpenRLHF version these patches were not written for.
    """
    check_openrlhf_version()
    if cpu is None:
        cpu = os.environ.get(DEVICE_ENV) == "cpu"
    if cpu:
        from mm_eureka_plugin.patches.cpu import install_standins

        install_standins()
    for table in (PATCHES, CPU_PATCHES) if cpu else (PATCHES,):
        activate(table)


def activate(table: dict[str, tuple[str, ...]]) -> None:
    """Patch each module of ``table`` with its patches: now if it is imported, else right after
    it is (the post-import finder goes first on ``sys.meta_path`` once; idempotent)."""
    patcher = next((f for f in sys.meta_path if isinstance(f, PostImportPatcher)), None)
    if patcher is None:
        patcher = PostImportPatcher()
        sys.meta_path.insert(0, patcher)
    for name, patch_names in table.items():
        patcher.active[name] = tuple(dict.fromkeys(patcher.active.get(name, ()) + patch_names))
        module = sys.modules.get(name)
        if module is not None:
            _apply(module, patcher.active[name])


def worker_setup_hook() -> None:
    """Ray ``worker_process_setup_hook``: install the patcher in every worker process."""
    install()
