"""OpenRLHF 0.11.2's flags as the plugin sees them: those the ``plugin:`` section sets, the rules a
recipe's ``openrlhf:`` section must follow beside the plugin, and the command line they make.

The core reads one flag (:data:`mm_eureka_plugin.config.OUTPUT_DIR_FLAG`); every other flag name
lives here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from mm_eureka_plugin.config import OUTPUT_DIR_FLAG, Recipe, RecipeError
from mm_eureka_plugin.data.records import LABEL_COLUMN
from mm_eureka_plugin.patches.train_ppo_ray import MODULE as OPENRLHF_MODULE
from mm_eureka_plugin.patches.train_ppo_ray import FlagError, parse_flags

OWNED_FLAGS = {
    "data": ("data.prompt_dataset", "data.input_key", "data.label_key", "data.image_key"),
    "reward": ("train.agent_func_path", "reward.remote_url", "reward.model_name_or_path"),
    "accuracy_filter": ("algo.dynamic_filtering_enable", "algo.dynamic_filtering_range"),
    "synthetic_task": ("actor.model_name_or_path", "eval.dataset"),
}
"""``plugin:`` key -> the OpenRLHF flags it sets (a recipe may not set them too)."""
DENSE_ESTIMATORS = ("reinforce", "rloo", "reinforce_baseline", "dr_grpo", "flash_reinforce")
"""OpenRLHF estimators whose advantages are returns-to-go over per-token rewards (dense step credit)."""
FILTER_SLACK = 1e-6
"""Widens ``accuracy_filter`` for OpenRLHF's strict comparison, so the range's ends are kept."""
CHECKPOINTS = "checkpoints"
"""The folder of ``<ckpt.output_dir>`` that holds DeepSpeed's checkpoints, unless ``ckpt.path`` is set."""
RESUME = "ckpt.load_enable"
"""The flag ``mm-eureka train --resume`` sets: OpenRLHF loads the latest checkpoint of the run."""


def check_recipe(recipe: Recipe) -> dict[str, Any]:
    """:meth:`Recipe.validate` (the built components), then refuse OpenRLHF flags that the chosen
    components would silently override or break."""
    built = recipe.validate()
    _check_policy_loss_flags(recipe)
    _check_plugin_owned_flags(recipe)
    _check_vlm_flags(recipe)
    plugin, flags = recipe.plugin, recipe.openrlhf
    estimator = flags.get("algo.advantage.estimator")
    if plugin.advantage_weight is not None and estimator != "dr_grpo":
        raise RecipeError(
            f"{recipe.where}key 'openrlhf.algo.advantage.estimator' is {estimator!r}; "
            f"plugin.advantage_weight '{plugin.advantage_weight.name}' weights the "
            "group-centred reward, which OpenRLHF computes with estimator dr_grpo (centring, no "
            "whitening). Set 'algo.advantage.estimator: dr_grpo'."
        )
    estimator = estimator or "gae"
    if getattr(built["reward"], "dense", False) and estimator not in DENSE_ESTIMATORS:
        raise RecipeError(
            f"{recipe.where}key 'openrlhf.algo.advantage.estimator' is {estimator!r}, but a reward credits "
            f"step rewards per token (dense), which needs one of {', '.join(DENSE_ESTIMATORS)}: they "
            "sum the per-token rewards into returns-to-go (group_norm would rescale only the final "
            "reward; gae needs a critic). rloo is the unbiased choice."
        )
    return built


def _check_policy_loss_flags(recipe: Recipe) -> None:
    if recipe.plugin.policy_loss is None:
        return
    flags, where, name = recipe.openrlhf, recipe.where, recipe.plugin.policy_loss.name
    if flags.get("actor.policy_loss_type", "ppo") != "ppo":
        raise RecipeError(
            f"{where}key 'openrlhf.actor.policy_loss_type' is "
            f"{flags['actor.policy_loss_type']!r}, but plugin.policy_loss '{name}' replaces "
            "OpenRLHF's loss. Remove the flag (or set it to ppo)."
        )
    for key in ("actor.eps_clip", "actor.eps_clip_low_high", "actor.dual_clip"):
        if flags.get(key) is not None:
            raise RecipeError(
                f"{where}key 'openrlhf.{key}' has no effect with plugin.policy_loss '{name}'. "
                "Remove it and set the loss's own parameters (e.g. clip_eps) under plugin.policy_loss."
            )
    if flags.get("actor.loss_agg_mode", "token-mean") != "token-mean":
        raise RecipeError(
            f"{where}key 'openrlhf.actor.loss_agg_mode' must be token-mean with plugin.policy_loss "
            f"'{name}', which aggregates by its own 'aggregation' parameter."
        )
    if flags.get("algo.advantage.is_correction_level", "off") != "off":
        raise RecipeError(
            f"{where}key 'openrlhf.algo.advantage.is_correction_level': vLLM importance-sampling "
            f"correction is not applied by plugin.policy_loss '{name}'. Remove the flag."
        )
    if recipe.plugin.policy_loss.params.get("aggregation") == "group_mean":
        raise RecipeError(
            f"{where}key 'plugin.policy_loss.aggregation': group_mean needs whole prompt groups in "
            "each batch, but OpenRLHF shuffles samples across micro-batches. Use token_mean "
            "(the CPGD authors' code does) when training through OpenRLHF."
        )


def _check_plugin_owned_flags(recipe: Recipe) -> None:
    """Refuse an OpenRLHF flag that a ``plugin:`` key sets, rather than silently override it."""
    for owner, owned in OWNED_FLAGS.items():
        if getattr(recipe.plugin, owner) is None:
            continue
        for flag in owned:
            if recipe.openrlhf.get(flag) not in (None, False):
                raise RecipeError(
                    f"{recipe.where}key 'openrlhf.{flag}' is set by plugin.{owner}; remove it from the "
                    "openrlhf section (mm-eureka train --dry-run shows the value it gets)."
                )
    max_images = recipe.openrlhf.get("data.max_images_per_prompt")
    if recipe.plugin.data is not None and not (isinstance(max_images, int) and max_images > 0):
        raise RecipeError(
            f"{recipe.where}key 'openrlhf.data.max_images_per_prompt' must be set with plugin.data: the "
            "most images one prompt has (1 for MMK12); vLLM reserves room for that many."
        )


def _check_vlm_flags(recipe: Recipe) -> None:
    """Refuse the OpenRLHF settings that break image prompts, saying why."""
    flags, where = recipe.openrlhf, recipe.where
    if not (flags.get("data.max_images_per_prompt") or recipe.plugin.data is not None):
        return
    reasons = {
        "ds.packing_samples": "packing collapses the batch dimension, so image tokens no longer line "
        "up with pixel_values, and Qwen2.5-VL's M-RoPE positions cannot be packed",
        "train.dynamic_batch_enable": "dynamic batching turns sample packing back on",
        "critic.model_name_or_path": "OpenRLHF's critic is text-only; use a critic-free estimator "
        "(dr_grpo, group_norm, rloo)",
    }
    for flag, why in reasons.items():
        if flags.get(flag) not in (None, False):
            raise RecipeError(f"{where}key 'openrlhf.{flag}' cannot be used with images: {why}.")
    if (flags.get("ds.ring_attn_size") or 1) > 1:
        raise RecipeError(
            f"{where}key 'openrlhf.ds.ring_attn_size' cannot be used with images: ring attention "
            "turns sample packing back on."
        )
    if flags.get("algo.advantage.estimator") == "gae":
        raise RecipeError(
            f"{where}key 'openrlhf.algo.advantage.estimator': gae needs a critic, which OpenRLHF "
            "does not support for images. Use dr_grpo, group_norm or rloo."
        )


def check_images_per_prompt(recipe: Recipe, converted: Path) -> None:
    """Refuse converted data with more images in a prompt, plus those the rollout executor may add
    (its ``max_added_images``), than ``data.max_images_per_prompt`` lets vLLM take in one request."""
    limit = recipe.openrlhf["data.max_images_per_prompt"]
    with converted.open() as rows:
        most = max((len(json.loads(line)["images"]) for line in rows), default=0)
    added = int(getattr(recipe.plugin.build("rollout_executor"), "max_added_images", 0))
    if most + added > limit:
        adds = f", and the rollout executor adds up to {added}" if added else ""
        raise RecipeError(
            f"{recipe.where}key 'openrlhf.data.max_images_per_prompt' is {limit}, but a prompt of "
            f"{recipe.plugin.data.path} has {most} images{adds}: vLLM takes at most {limit} in one request. "
            f"Set it to {most + added}."
        )


def plugin_flags(recipe: Recipe, prompt_dataset: str | None = None) -> dict[str, Any]:
    """The OpenRLHF flags the ``plugin:`` section implies (``prompt_dataset`` is the converted data),
    and the run's directories made absolute: ``ckpt.output_dir``, and ``ckpt.path`` (DeepSpeed's
    checkpoints) ``<ckpt.output_dir>/checkpoints`` unless set."""
    plugin = recipe.plugin
    # Absolute: Ray workers resolve a relative path in their own working directory. Per run:
    # OpenRLHF's default ckpt.path is shared by every run (--resume would load another's state).
    flags: dict[str, Any] = {OUTPUT_DIR_FLAG: str(recipe.output_dir), "ckpt.path": str(checkpoint_dir(recipe))}
    if plugin.synthetic_task is not None:
        flags["actor.model_name_or_path"] = str(recipe.synthetic_task_dir / "model")
        flags["eval.dataset"] = str(recipe.synthetic_task_dir / "eval.jsonl")
    if plugin.data is not None:
        flags.update(
            {
                "data.prompt_dataset": prompt_dataset or "<converted plugin.data.path>",
                "data.input_key": "prompt",
                "data.label_key": LABEL_COLUMN,
                "data.image_key": "images",
                "data.apply_chat_template": True,
            }
        )
    if plugin.reward is not None:
        flags["train.agent_func_path"] = agent_executor_path()
    if plugin.accuracy_filter is not None:
        low, high = plugin.accuracy_filter
        # OpenRLHF keeps a group when low < mean < high; the paper's range is closed.
        flags["algo.dynamic_filtering_enable"] = True
        flags["algo.dynamic_filtering_range"] = [low - FILTER_SLACK, high + FILTER_SLACK]
    return flags


def checkpoint_dir(recipe: Recipe) -> Path:
    """Where the run's DeepSpeed checkpoints go: ``ckpt.path``, else ``<ckpt.output_dir>/checkpoints``; absolute."""
    return Path(recipe.openrlhf.get("ckpt.path") or recipe.output_dir / CHECKPOINTS).expanduser().resolve()


def with_plugin_flags(recipe: Recipe, prompt_dataset: str | None = None) -> Recipe:
    """``recipe`` with :func:`plugin_flags` added to its OpenRLHF flags."""
    return replace(recipe, openrlhf={**recipe.openrlhf, **plugin_flags(recipe, prompt_dataset)})


def agent_executor_path() -> str:
    """The file given to OpenRLHF's ``--train.agent_func_path``: the rollout executor with the plugin reward."""
    return str(importlib.util.find_spec("mm_eureka_plugin.patches.agent_executor").origin)


def argv(recipe: Recipe) -> list[str]:
    """The recipe's OpenRLHF flags as a command line, in recipe order: ``true`` a bare flag,
    ``false``/``null`` left out, a list one value per argument."""
    out: list[str] = []
    for key, value in recipe.openrlhf.items():
        if value is None or value is False:
            continue
        out.append(f"--{key}")
        if value is True:
            continue
        values = value if isinstance(value, list) else [value]
        out.extend(_flag_value(v) for v in values)
    return out


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value < 0:
        # argparse reads "-1e-06" as an option; "-0.000001" is a negative number to it
        return format(Decimal(repr(value)), "f")
    return str(value)


def command(recipe: Recipe) -> str:
    """The shell command equivalent to what ``mm-eureka train`` runs."""
    return shlex.join(["python", "-m", OPENRLHF_MODULE, *argv(recipe)])


def parse(recipe: Recipe) -> argparse.Namespace:
    """The recipe's flags parsed by OpenRLHF's own parser (the patches must be installed)."""
    try:
        return parse_flags(argv(recipe))
    except FlagError as exc:
        raise RecipeError(
            f"{recipe.where}section 'openrlhf': OpenRLHF {OPENRLHF_MODULE} rejects the flags: {exc}"
        ) from exc


def check_cpu_flags(recipe: Recipe, args: argparse.Namespace) -> None:
    """Refuse the parsed OpenRLHF flags (``args``) a CPU run cannot honour."""
    flag = vars(args)
    problems = {
        "vllm.num_engines": (
            (flag["vllm.num_engines"] or 0) < 1,
            "must be at least 1: on CPU, rollouts come from rollout actors too, one per engine",
        ),
        "vllm.tensor_parallel_size": (flag["vllm.tensor_parallel_size"] != 1, "must be 1 on CPU"),
        "vllm.sync_with_ray": (flag["vllm.sync_with_ray"], "is not supported on CPU; leave it off"),
        "vllm.sync_backend": (
            flag["vllm.sync_backend"] == "nccl" and flag["train.colocate_all"] and not flag["train.async_enable"],
            "nccl with train.colocate_all syncs weights by CUDA IPC; set it to gloo on CPU",
        ),
    }
    for key, (bad, why) in problems.items():
        if bad:
            raise RecipeError(f"{recipe.where}key 'openrlhf.{key}' {why}.")


def model_path(args: argparse.Namespace) -> str:
    """The policy checkpoint of the parsed flags ``args``."""
    return vars(args)["actor.model_name_or_path"]
