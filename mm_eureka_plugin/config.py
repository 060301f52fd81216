"""Recipes: loading, ``--set`` overrides, validation, and the plugin config handed to Ray workers.

A recipe is YAML with two sections::

    openrlhf:                      # OpenRLHF flags, passed verbatim to openrlhf.cli.train_ppo_ray
      actor.model_name_or_path: Qwen/Qwen2.5-VL-7B-Instruct
      actor.freeze_visual_encoder: true       # true -> bare flag, false/null -> left out
    plugin:                        # this project's components
      policy_loss: {name: cpgd, drift_coef: 0.01}   # or just: policy_loss: cpgd
      advantage_weight: clip_filter_like

A component is a registered name or a reference (``pkg.module:attr``, ``./file.py:attr``; a
relative file is taken from the recipe's folder).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mm_eureka_plugin.registry import ComponentError, resolve

CONFIG_ENV = "MM_EUREKA_PLUGIN_CONFIG"
"""Environment variable carrying the plugin config (JSON) from the launcher to every Ray worker."""

OPENRLHF_MODULE = "openrlhf.cli.train_ppo_ray"

COMPONENT_KEYS = ("policy_loss", "advantage_weight")
"""``plugin:`` keys that name a component; the key is also the component kind."""

DEVICES = ("auto", "cuda", "cpu")

_FLAG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats: ``1e-6`` is a number, not the string YAML 1.1 makes of it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


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
class PluginConfig:
    """The ``plugin:`` section: which components replace OpenRLHF's defaults, and the device."""

    policy_loss: ComponentSpec | None = None
    advantage_weight: ComponentSpec | None = None
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": self.device}
        for key in COMPONENT_KEYS:
            spec = getattr(self, key)
            if spec is not None:
                out[key] = spec.to_dict()
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
        return built

    def build_components(self) -> dict[str, Any]:
        """Build every chosen component."""
        built = {}
        for key in COMPONENT_KEYS:
            try:
                built[key] = self.plugin.build(key)
            except ComponentError as exc:
                raise RecipeError(f"{self.where}key 'plugin.{key}': {exc}") from exc
        return built

    def check_openrlhf_compat(self) -> None:
        """Refuse OpenRLHF flags that the chosen components would silently override or break."""
        flags = self.openrlhf
        where = self.where
        if self.plugin.policy_loss is not None:
            name = self.plugin.policy_loss.name
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
        if self.plugin.advantage_weight is not None:
            estimator = flags.get("algo.advantage.estimator")
            if estimator != "dr_grpo":
                raise RecipeError(
                    f"{where}key 'openrlhf.algo.advantage.estimator' is {estimator!r}; "
                    f"plugin.advantage_weight '{self.plugin.advantage_weight.name}' weights the "
                    "group-centred reward, which OpenRLHF computes with estimator dr_grpo (centring, no "
                    "whitening). Set 'algo.advantage.estimator: dr_grpo'."
                )

    @property
    def where(self) -> str:
        """Prefix for error messages: the recipe's path, or nothing for a recipe built in code."""
        return f"{self.path}: " if self.path else ""


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Read, override (``section.key=value``) and validate a recipe file."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe '{path}' does not exist.")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with 'openrlhf' and 'plugin' sections.")
    for override in overrides or []:
        apply_override(data, override, source=str(path))
    return parse_recipe(data, path=path)


def apply_override(data: dict, override: str, source: str = "recipe") -> None:
    """Apply one ``--set`` override in place: ``openrlhf.FLAG=value`` or ``plugin.KEY[.PARAM]=value``."""
    key, sep, raw = override.partition("=")
    section, _, rest = key.strip().partition(".")
    if not sep or not rest or section not in ("openrlhf", "plugin"):
        raise RecipeError(
            f"--set '{override}': write 'openrlhf.FLAG=VALUE' or 'plugin.KEY=VALUE' "
            "(e.g. openrlhf.actor.learning_rate=1e-6, plugin.policy_loss.drift_coef=0.02)."
        )
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"--set '{override}': value is not valid YAML: {exc}") from exc
    target = data.setdefault(section, {})
    if not isinstance(target, dict):
        raise RecipeError(f"{source}: section '{section}' must be a mapping.")
    if section == "openrlhf":
        target[rest] = value
        return
    component, _, param = rest.partition(".")
    if not param:
        target[component] = value
        return
    current = target.get(component)
    if isinstance(current, str):
        current = {"name": current}
    if current is None:
        raise RecipeError(f"--set '{override}': plugin.{component} has no component to set '{param}' on.")
    current[param] = value
    target[component] = current


def parse_recipe(data: dict, path: Path | None = None) -> Recipe:
    """Validate a recipe mapping (already overridden)."""
    where = f"{path}: " if path else ""
    unknown = set(data) - {"openrlhf", "plugin"}
    if unknown:
        raise RecipeError(
            f"{where}unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}. "
            "A recipe has two sections: 'openrlhf' (OpenRLHF flags) and 'plugin' (components)."
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
    return Recipe(path=path, openrlhf=flags, plugin=plugin)


def parse_plugin_section(section: Any, where: str = "", base_dir: Path | None = None) -> PluginConfig:
    """Validate the ``plugin:`` mapping into a :class:`PluginConfig`; ``where`` prefixes errors."""
    valid = (*COMPONENT_KEYS, "device")
    if not isinstance(section, dict):
        raise RecipeError(f"{where}key 'plugin' must be a mapping; valid keys: {', '.join(valid)}.")
    unknown = [k for k in section if k not in valid]
    if unknown:
        raise RecipeError(f"{where}key 'plugin': unknown key '{unknown[0]}'. Valid keys: {', '.join(valid)}.")
    device = section.get("device", "auto")
    if device not in DEVICES:
        raise RecipeError(f"{where}key 'plugin.device' must be one of {', '.join(DEVICES)}, got {device!r}.")
    specs = {
        key: _parse_component(section[key], f"{where}key 'plugin.{key}'", base_dir)
        for key in COMPONENT_KEYS
        if section.get(key) is not None
    }
    return PluginConfig(device=device, **specs)


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
    path = Path(target).expanduser()
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    return f"{path}:{attr}"
