"""``mm-eureka train``: prepare a run (the synthetic task, the converted data, the PRM server) and
hand it to OpenRLHF through :mod:`mm_eureka_plugin.patches.launch`, which knows how OpenRLHF starts."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mm_eureka_plugin.config import PRMServerConfig, Recipe, RecipeError, as_recipe
from mm_eureka_plugin.patches import launch as openrlhf_launch
from mm_eureka_plugin.patches.flags import command, with_plugin_flags

logger = logging.getLogger(__name__)


def use_cpu(recipe: Recipe) -> bool:
    """Whether the run is on CPU: the recipe says ``device: cpu``, or ``auto`` finds no CUDA here.

    ``auto`` is refused on a driver without CUDA that joins a Ray cluster (``RAY_ADDRESS``): the
    cluster's workers may have GPUs that this node (a head or login node) lacks.
    """
    if recipe.plugin.device != "auto":
        return recipe.plugin.device == "cpu"
    import torch

    if torch.cuda.is_available():
        return False
    if os.environ.get("RAY_ADDRESS"):
        raise RecipeError(
            f"{recipe.where}key 'plugin.device' is auto, but this node has no CUDA and joins the Ray cluster at "
            f"RAY_ADDRESS={os.environ['RAY_ADDRESS']}, whose workers may have GPUs: set plugin.device to cuda "
            "(a GPU cluster) or cpu."
        )
    return True


def prepare_synthetic_task(recipe: Recipe) -> None:
    """Build ``plugin.synthetic_task`` (model, training and evaluation data) unless it is there."""
    from mm_eureka_plugin.synthetic import build_colour_task

    task = recipe.plugin.synthetic_task
    if task is None:
        return
    logger.info("synthetic colour task in %s", recipe.synthetic_task_dir)
    try:
        build_colour_task(recipe.synthetic_task_dir, **asdict(task))
    except ValueError as exc:
        raise RecipeError(f"{recipe.where}key 'plugin.synthetic_task': {exc}") from exc


def converted_data_path(recipe: Recipe) -> Path:
    """Where ``plugin.data`` is converted to: named by the source's identity and the data settings.

    A file's identity is its path, size and modification time; a folder's, the same of each file in
    it; a hub dataset's, its name and split only (delete the converted file to read a newer version).
    """
    from mm_eureka_plugin.data.formats import DEFAULT_SPLIT, data_source

    data = recipe.plugin.data
    source = data_source(data.path)
    if source.kind == "file":
        stat = Path(data.path).stat()
        identity = [str(data.path), stat.st_size, stat.st_mtime_ns]
        stem = Path(data.path).stem
    else:
        identity = [str(source), *(_folder_files(Path(source.location)) if source.kind == "folder" else [])]
        stem = re.sub(r"[^\w.-]+", "_", f"{Path(source.location).name}-{source.split or DEFAULT_SPLIT}")
    asked = {name: value for name, value in rollout_data_settings(recipe).items() if value}
    key = json.dumps([*identity, as_recipe(data), *([asked] if asked else [])], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    cache_dir = Path(data.cache_dir) if data.cache_dir else recipe.output_dir / "data"
    return cache_dir / f"{stem}-{digest}.jsonl"


def _folder_files(folder: Path) -> list[list[Any]]:
    """``[relative path, size, modification time]`` of each file in ``folder`` and below, hidden ones
    (``.git``, ``.cache``) left out."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            stat = path.stat()
            files.append([relative.as_posix(), stat.st_size, stat.st_mtime_ns])
    return files


def check_data_path(recipe: Recipe) -> None:
    """Refuse a ``plugin.data.path`` that is unset, a missing file, or a folder without data files
    (a real run and ``--dry-run`` alike). A hub dataset name is taken as it is here: reading it
    (when the data is converted, before Ray starts) reports a name that is not on the Hub, not
    cached while offline, or without the split asked for."""
    from mm_eureka_plugin.data.formats import DATA_FILE_SUFFIXES, data_source

    path = recipe.plugin.data.path
    if path is None:
        raise RecipeError(
            f"{recipe.where}key 'plugin.data.path' is not set: point it at your training data "
            "(e.g. --set plugin.data.path=/data/mmk12/train.jsonl, or a hub dataset such as FanqingM/MMK12)."
        )
    source = data_source(path)
    if source.kind == "folder":
        folder = Path(source.location)
        if not any(p.is_file() and p.name.endswith(DATA_FILE_SUFFIXES) for p in folder.rglob("*")):
            raise RecipeError(
                f"{recipe.where}key 'plugin.data.path': a directory, not a data file, and no data files "
                f"({', '.join(DATA_FILE_SUFFIXES)}) in it for datasets to read as a hub-layout folder: {folder}."
            )
    elif source.kind == "file" and not Path(path).is_file():
        raise RecipeError(f"{recipe.where}key 'plugin.data.path': no such file: {path}.")


def rollout_data_settings(recipe: Recipe) -> dict[str, Any]:
    """What ``plugin.rollout_executor`` asks of the converted data (:func:`~mm_eureka_plugin.data.convert.executor_settings`)."""
    from mm_eureka_plugin.data.convert import executor_settings

    return executor_settings(recipe.plugin.build("rollout_executor"))


def convert_data(recipe: Recipe) -> Path | None:
    """Convert ``plugin.data`` for OpenRLHF (once; reused while the source and settings are unchanged)
    and return the converted file (None without ``plugin.data``). Runs before Ray starts, so a bad
    row with ``on_bad_row: error`` stops the launch with the report."""
    from mm_eureka_plugin.data import DataError, convert_file

    data = recipe.plugin.data
    if data is None:
        return None
    check_data_path(recipe)
    out = converted_data_path(recipe)
    if out.is_file():
        logger.info("using data converted earlier: %s", out)
        return out
    try:
        report = convert_file(
            data.path,
            data.format.name,
            out,
            min_pixels=data.min_pixels,
            max_pixels=data.max_pixels,
            on_bad_row=data.on_bad_row,
            progress=True,
            **rollout_data_settings(recipe),
            **data.format.params,
        )
    except DataError as exc:
        raise RecipeError(f"{recipe.where}key 'plugin.data': {exc}") from exc
    for bad in report.bad:
        logger.warning("skipped row %d (id %s): %s", bad.row, bad.id or "-", bad.reason)
    if report.bad:
        logger.warning("skipped %d bad row(s) of %s (on_bad_row: skip)", len(report.bad), data.path)
    return out


def start_prm(config: PRMServerConfig, cpu: bool) -> Any:
    """Start the run's PRM server (``plugin.prm``): a GPU unless the run is on CPU or ``num_gpus`` says otherwise."""
    from mm_eureka_plugin.prm.server import start_prm_server

    num_gpus = config.gpus(cpu)
    logger.info("starting the PRM server: %s on %s", config.path, "CPU" if cpu or not num_gpus else f"{num_gpus} GPU")
    return start_prm_server(
        config.path, num_gpus=num_gpus, batch_size=config.batch_size, max_wait_ms=config.max_wait_ms, cpu=cpu
    )


def dry_run(recipe: Recipe, args: argparse.Namespace, cpu: bool, cluster: list[float] | None) -> str:
    """What ``mm-eureka train --dry-run`` prints: the OpenRLHF command, the plugin config, and the
    placement of the run's GPU groups (on ``cluster``, GPUs per node, when given)."""
    converted = None
    data = recipe.plugin.data
    # unset: the command shows a placeholder; a synthetic task's data is built at launch
    if data is not None and data.path is not None and recipe.plugin.synthetic_task is None:
        check_data_path(recipe)
        converted = str(converted_data_path(recipe))
    plugin = json.dumps(as_recipe(recipe.plugin), indent=2, sort_keys=True)
    placement = openrlhf_launch.placement(recipe, args, cpu, cluster)
    if cluster is None:
        placement += "\n(--cluster NODESxGPUS checks it against a cluster)"
    return (
        f"# OpenRLHF command\n{command(with_plugin_flags(recipe, converted))}\n# plugin config\n{plugin}\n"
        f"# placement\n{placement}"
    )


def train(recipe: Recipe, cpu: bool, args: argparse.Namespace) -> None:
    """Prepare the run (synthetic task, metrics file, converted data) and run OpenRLHF's
    ``train_ppo_ray`` with the plugin active; ``args`` are the flags
    :func:`mm_eureka_plugin.patches.launch.check_recipe` parsed."""
    prepare_synthetic_task(recipe)
    openrlhf_launch.start_run_files(recipe)
    recipe = openrlhf_launch.prepared(recipe, convert_data(recipe))
    openrlhf_launch.check_rollout_model(recipe, cpu, args)
    # A CPU run starts its own Ray with logical GPUs; a cluster it joins (RAY_ADDRESS) brings its own.
    resources = (
        openrlhf_launch.cpu_ray_resources(args, recipe.plugin) if cpu and not os.environ.get("RAY_ADDRESS") else {}
    )
    openrlhf_launch.init_ray(recipe.plugin, cpu, seed=openrlhf_launch.run_seed(args), **resources)
    logger.info("placement:\n%s", openrlhf_launch.placement(recipe, args, cpu, None))
    openrlhf_launch.check_nodes(openrlhf_launch.shared_paths(recipe))
    # Ray ends an actor when its last handle goes: this one lives as long as the run.
    prm_server = start_prm(recipe.plugin.prm, cpu) if recipe.plugin.prm is not None else None
    try:
        openrlhf_launch.run_openrlhf(recipe)
    finally:
        if prm_server is not None:
            log_prm_stats(prm_server)


def log_prm_stats(server: Any) -> None:
    """Log the PRM server's counts at the end of a run (requests, solutions, forward batches)."""
    import ray

    try:
        stats = ray.get(server.stats.remote(), timeout=30)
    except Exception as exc:  # the run is over either way
        logger.warning("PRM server: no statistics (%s: %s)", type(exc).__name__, exc)
        return
    logger.info("PRM server: %s", ", ".join(f"{key} {value}" for key, value in stats.items()))
