"""Component discovery: plugins from the ``mm_eureka`` entry point group, and references.

A component is named either by its registered name (``cpgd``) or by a reference to its factory:
``pkg.module:attr`` (an importable module) or ``path/to/file.py:attr`` (a file, relative to the
current directory unless absolute). Built-in components come through the project's own entry
point, exactly like a third party's.

Loading a reference imports its module, which runs that module's code, and building a component
calls its factory: a recipe that names code runs it, ``--dry-run`` too (as Hydra's ``_target_``
and torchtune's ``_component_`` do). References into Python's standard library and builtins are
refused, and what a factory returns is checked against its kind's contract
(:func:`mm_eureka_plugin.contracts.contract_problem`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from mm_eureka_plugin import PROJECT_NAME, hookspecs
from mm_eureka_plugin.contracts import contract_problem
from mm_eureka_plugin.errors import UserError
from mm_eureka_plugin.hookspecs import KIND_HOOKS

KINDS = tuple(KIND_HOOKS)


class ComponentError(UserError):
    """A component cannot be found, registered or built; the message says what to do."""


@dataclass(frozen=True)
class Component:
    """A registered factory: ``factory(**params)`` builds the component."""

    kind: str
    name: str
    factory: Callable[..., Any]
    distribution: str
    description: str


@dataclass(frozen=True)
class PluginLoadError:
    """A plugin entry point that could not be loaded; listed by ``mm-eureka plugins``."""

    entry_point: str
    distribution: str
    error: str


@dataclass
class Registry:
    """Every component of every installed plugin, by kind and name."""

    components: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})
    load_errors: list[PluginLoadError] = field(default_factory=list)

    @classmethod
    def discover(cls, group: str = PROJECT_NAME) -> Registry:
        """Load every entry point of ``group``; a plugin that fails to load is recorded, not fatal."""
        registry = cls()
        manager = pluggy.PluginManager(PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        distributions: dict[str, str] = {}
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "<unknown>"
            label = f"{ep.name} = {ep.value}"
            plugin = None
            try:
                plugin = ep.load()
                manager.register(plugin, name=label)
                manager.check_pending()
            except Exception as exc:  # any import or contract error is reported, not raised
                if plugin is not None and manager.is_registered(plugin):
                    manager.unregister(plugin)
                registry.load_errors.append(PluginLoadError(label, dist, f"{type(exc).__name__}: {exc}"))
                continue
            distributions[label] = dist
        for kind, hook_name in KIND_HOOKS.items():
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                dist = distributions[impl.plugin_name]
                try:
                    factories = impl.function()
                    _check_factories(factories, hook_name)
                except Exception as exc:
                    registry.load_errors.append(
                        PluginLoadError(impl.plugin_name, dist, f"{hook_name}: {type(exc).__name__}: {exc}")
                    )
                    continue
                for name, factory in factories.items():
                    registry.add(Component(kind, name, factory, dist, _first_line(factory)))
        return registry

    def add(self, component: Component) -> None:
        """Register ``component``; a second component of the same kind and name is an error."""
        existing = self.components[component.kind].get(component.name)
        if existing is not None:
            raise ComponentError(
                f"{component.kind} '{component.name}' is registered twice: by distribution "
                f"'{existing.distribution}' and by distribution '{component.distribution}'. "
                "Uninstall one of them, or ask one to rename its component."
            )
        self.components[component.kind][component.name] = component

    def get(self, kind: str, ref: str) -> Component:
        """The component named ``ref`` (a registered name or a ``module:attr`` / ``file.py:attr`` reference)."""
        _check_kind(kind)
        if ":" in ref:
            factory = load_reference(ref)
            return Component(kind, ref, factory, "<reference>", _first_line(factory))
        try:
            return self.components[kind][ref]
        except KeyError:
            valid = ", ".join(sorted(self.components[kind])) or "(none registered)"
            raise ComponentError(
                f"unknown {kind} '{ref}'. Valid names: {valid}; or give a reference such as "
                f"'my_pkg.module:make_{kind}' or './my_file.py:make_{kind}'."
            ) from None


def _check_kind(kind: str) -> None:
    if kind not in KIND_HOOKS:
        raise ComponentError(f"unknown component kind '{kind}'. Valid kinds: {', '.join(KINDS)}.")


def _check_factories(factories: object, hook_name: str) -> None:
    if not isinstance(factories, dict):
        raise TypeError(f"must return dict[str, factory], got {type(factories).__name__}")
    for name, factory in factories.items():
        if not isinstance(name, str) or not callable(factory):
            raise TypeError(f"entry {name!r} must map a str name to a callable factory")


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def load_reference(ref: str) -> Callable[..., Any]:
    """Import the factory named by ``pkg.module:attr`` or ``path/file.py:attr``."""
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise ComponentError(f"reference '{ref}' must look like 'pkg.module:attr' or './file.py:attr'.")
    if target.endswith(".py"):
        module = _load_file(ref, Path(target))
    elif target.partition(".")[0] in sys.stdlib_module_names or target == "builtins":
        raise ComponentError(
            f"reference '{ref}' names Python's standard library, not a component. A reference names "
            "your own factory: 'my_pkg.module:make_x' or './my_file.py:make_x'."
        )
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ComponentError(
                f"reference '{ref}': cannot import module '{target}' ({exc}). "
                "Install the package that provides it, or use a './file.py:attr' reference."
            ) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ComponentError(f"reference '{ref}': '{target}' has no attribute '{attr}'.") from None
    if not callable(obj):
        raise ComponentError(f"reference '{ref}': '{attr}' is a {type(obj).__name__}, not a callable factory.")
    return obj


def _load_file(ref: str, path: Path) -> types.ModuleType:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ComponentError(f"reference '{ref}': file '{path}' does not exist. Fix the path in the recipe.")
    # One module per file path, so every reference to a file shares its module state.
    module_name = f"mm_eureka_ref_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ComponentError(f"reference '{ref}': importing '{path}' failed: {type(exc).__name__}: {exc}") from exc
    return module


def check_params(factory: Callable[..., Any], params: dict[str, Any], where: str) -> None:
    """Check ``params`` against ``factory``'s signature (a function or class): known names, the
    required ones present, and types where annotated; :class:`ComponentError` names ``where``."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to check against
    accepted = {
        name: p for name, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    try:
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except Exception:
        hints = {}
    for key, value in params.items():
        if key not in accepted:
            if takes_any:
                continue
            valid = ", ".join(accepted) or "(none)"
            raise ComponentError(f"unknown parameter '{key}' for {where}. Valid parameters: {valid}.")
        hint = hints.get(key)
        if hint is not None and not _matches(value, hint):
            raise ComponentError(
                f"parameter '{key}' of {where} must be {_type_name(hint)}, got {value!r} ({type(value).__name__})."
            )
    missing = [name for name, p in accepted.items() if p.default is p.empty and name not in params]
    if missing:
        raise ComponentError(f"{where} needs parameter(s): {', '.join(missing)}.")


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(origin, type):
        return isinstance(value, origin)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # annotations we cannot check are taken on trust


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


_registry: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, discovered on first use."""
    global _registry
    if _registry is None:
        _registry = Registry.discover()
    return _registry


def reload() -> None:
    """Forget the discovered plugins: the next use discovers them again (after installing or
    removing a distribution)."""
    global _registry
    importlib.invalidate_caches()
    _registry = None


def names(kind: str) -> list[str]:
    """The registered names of ``kind``, sorted."""
    _check_kind(kind)
    return sorted(registry().components[kind])


def resolve(kind: str, ref: str, **params: Any) -> Any:
    """Build the component ``ref`` of ``kind`` with ``params``, after checking them."""
    component = registry().get(kind, ref)
    check_params(component.factory, params, f"{component.kind} '{component.name}'")
    try:
        built = component.factory(**params)
    except (TypeError, ValueError) as exc:
        raise ComponentError(f"{kind} '{ref}': {exc}") from exc
    problem = contract_problem(kind, built)
    if problem is not None:
        raise ComponentError(
            f"{kind} '{ref}' is not a {kind}: {problem}. See the {kind} contract in the README "
            "(Write your own component)."
        )
    return built
