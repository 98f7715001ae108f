"""Finding, loading and asking plugins.

Loading is lazy and happens once: the first call to ``get_plugin_manager()`` (or anything that
needs the registry) registers the built-in plugins, then every entry point in the ``aegis``
group. Environment switches:

* ``AEGIS_PLUGINS`` — comma-separated entry-point names to load; empty string loads none
  (built-ins always load). Unset: load all installed. A name no installed plugin has is a
  warning, and a load failure (the configuration asks for something that is not there).
* ``AEGIS_DISABLE_PLUGINS`` — comma-separated entry-point names never to load (an unknown
  name is a warning).
* ``AEGIS_TRACE_PLUGINS=1`` — print, to stderr, every plugin registered, every name it
  registers, and every hook call (pluggy's tracing).

A plugin that fails to import or to register is recorded in ``load_failures()`` and shown by
``aegis plugins``; it never takes Aegis down, and anything it would have registered is absent
(so a policy naming its condition is rejected rather than silently weakened). Registering a
condition without a valid JSON Schema for its argument is such a failure: the condition could
not be validated like a built-in, so the plugin is not used at all.

Built-ins are asked first whatever the hook implementations' ``tryfirst``/``trylast`` say, so
a plugin can never take over a built-in name; the clash is reported against the plugin.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pluggy

from aegis import hookspecs
from aegis.errors import PluginError

ENTRY_POINT_GROUP = "aegis"

#: The distribution that ships this package (the directory in the repository is aegis-core/).
CORE_DISTRIBUTION = "agent-aegis-core"

#: Aegis's own behaviour, registered through the same hooks as third-party plugins.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "aegis.builtins.conditions",
    "aegis.builtins.approvals",
    "aegis.builtins.sinks",
    "aegis.builtins.templates",
)

#: The registration hooks and the registry kind each one fills.
REGISTRY_KINDS: dict[str, str] = {
    "executors": "aegis_register_executors",
    "approval_handlers": "aegis_register_approval_handlers",
    "conditions": "aegis_register_conditions",
    "audit_sinks": "aegis_register_audit_sinks",
    "policy_templates": "aegis_register_policy_templates",
    "routes": "aegis_register_routes",
}


@attrs.frozen
class Registration:
    """One named thing a plugin registered."""

    kind: str
    name: str
    obj: Any
    plugin: str
    options: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class PluginFailure:
    plugin: str
    distribution: str | None
    error: str


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    registers: dict[str, tuple[str, ...]]


@attrs.define
class Registry:
    """Everything registered, by kind then name. Built once from the hooks; rebuilt on change."""

    entries: dict[str, dict[str, Registration]] = attrs.field(
        factory=lambda: {kind: {} for kind in REGISTRY_KINDS}
    )
    failures: list[PluginFailure] = attrs.field(factory=list)

    def get(self, kind: str, name: str) -> Registration | None:
        return self.entries[kind].get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def of_kind(self, kind: str) -> dict[str, Registration]:
        return dict(self.entries[kind])


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pm: pluggy.PluginManager | None = None
        self.registry: Registry | None = None
        self.failures: list[PluginFailure] = []
        self.dists: dict[str, tuple[str | None, str | None]] = {}


_state = _State()


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def _tracing() -> bool:
    return bool(os.environ.get("AEGIS_TRACE_PLUGINS"))


def _trace(message: str) -> None:
    if _tracing():
        sys.stderr.write(f"aegis plugins: {message}\n")


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    only = _env_list("AEGIS_PLUGINS")
    disabled = set(_env_list("AEGIS_DISABLE_PLUGINS") or [])
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    installed = {ep.name for ep in found}
    for name in sorted(set(only or ()) - installed):
        message = (
            f"AEGIS_PLUGINS names {name!r}, but no installed plugin has that entry-point name"
            f" (installed: {', '.join(sorted(installed)) or 'none'})"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        _state.failures.append(PluginFailure(name, None, message))
    for name in sorted(disabled - installed):
        warnings.warn(
            f"AEGIS_DISABLE_PLUGINS names {name!r}, but no installed plugin has that name",
            RuntimeWarning,
            stacklevel=3,
        )
    for ep in found:
        if ep.name in disabled or (only is not None and ep.name not in only):
            _trace(f"skipped {ep.name} (AEGIS_PLUGINS / AEGIS_DISABLE_PLUGINS)")
            continue
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        dist_version = dist.version if dist is not None else None
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not take Aegis down
            _state.failures.append(
                PluginFailure(ep.name, dist_name, f"{type(exc).__name__}: {exc}")
            )
            _trace(f"failed to load {ep.name} ({dist_name}): {type(exc).__name__}: {exc}")
            continue
        _state.dists[ep.name] = (dist_name, dist_version)
        _trace(f"registered {ep.name} from {dist_name} {dist_version} ({ep.value})")


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built (once) on first use."""
    pm = _state.pm
    if pm is not None:
        return pm
    with _state.lock:
        if _state.pm is None:
            pm = pluggy.PluginManager("aegis")
            pm.add_hookspecs(hookspecs)
            for module_name in DEFAULT_PLUGINS:
                module = importlib.import_module(module_name)
                pm.register(module, name=module_name)
                _trace(f"registered built-in {module_name}")
            _load_entry_points(pm)
            if _tracing():
                pm.trace.root.setwriter(lambda msg: sys.stderr.write(str(msg)))
                pm.enable_tracing()
            _state.pm = pm
        return _state.pm


def _make_register(staged: list[Registration], kind: str, plugin_name: str) -> Callable[..., None]:
    def register(name: str, obj: Any, /, **options: Any) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"{kind} names must be non-empty strings, got {name!r}")
        _trace(f"{plugin_name} registers {kind} {name!r}")
        staged.append(Registration(kind, name, obj, plugin_name, dict(options)))

    return register


_RESERVED_CONDITIONS = frozenset({"all", "any", "not"})


def _condition_problem(reg: Registration) -> str | None:
    """Why a condition registration cannot be used (None: it can)."""
    if reg.name in _RESERVED_CONDITIONS:
        return f"condition name {reg.name!r} is reserved for the combinators all, any, not"
    if not callable(reg.obj):
        return f"condition {reg.name!r}: the factory is not callable ({type(reg.obj).__name__})"
    schema = reg.options.get("schema")
    if schema is None:
        return (
            f"condition {reg.name!r} was registered without a schema; pass"
            " register(name, factory, schema={...}) with the JSON Schema of its argument"
        )
    if not isinstance(schema, Mapping):
        return f"condition {reg.name!r}: schema must be a mapping, got {type(schema).__name__}"
    import jsonschema  # type: ignore[import-untyped,unused-ignore]

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        return f"condition {reg.name!r}: invalid schema at {where}: {exc.message}"
    if _has_ref(schema):
        return (
            f"condition {reg.name!r}: its schema uses $ref, which cannot resolve once the"
            " fragment is part of the policy schema; inline the definitions"
        )
    return None


def _has_ref(schema: Any) -> bool:
    if isinstance(schema, Mapping):
        return any(
            key in ("$ref", "$dynamicRef") or _has_ref(value) for key, value in schema.items()
        )
    if isinstance(schema, list):
        return any(_has_ref(item) for item in schema)
    return False


def _ordered_impls(pm: pluggy.PluginManager, hook_name: str) -> list[Any]:
    """A hook's implementations, built-ins first, then in registration order.

    pluggy orders implementations by ``tryfirst``/``trylast``; registration must not: a
    plugin marking its hook ``trylast`` (or ``tryfirst``) would otherwise register before
    the built-ins and take over their names.
    """
    order = {name: i for i, (name, _) in enumerate(pm.list_name_plugin())}
    impls = list(getattr(pm.hook, hook_name).get_hookimpls())
    return sorted(
        impls,
        key=lambda impl: (
            impl.plugin_name not in DEFAULT_PLUGINS,
            order.get(impl.plugin_name, len(order)),
        ),
    )


def _build_registry(pm: pluggy.PluginManager) -> Registry:
    registry = Registry(failures=list(_state.failures))
    failed_plugins: set[str] = set()
    for kind, hook_name in REGISTRY_KINDS.items():
        for impl in _ordered_impls(pm, hook_name):
            plugin_name = impl.plugin_name
            if plugin_name in failed_plugins:
                continue
            staged: list[Registration] = []
            register = _make_register(staged, kind, plugin_name)
            try:
                impl.function(register=register)
            except Exception as exc:
                failed_plugins.add(plugin_name)
                dist = _state.dists.get(plugin_name, (None, None))[0]
                registry.failures.append(
                    PluginFailure(plugin_name, dist, f"{hook_name}: {type(exc).__name__}: {exc}")
                )
                continue
            if kind == "conditions" and plugin_name not in DEFAULT_PLUGINS:
                problems = [p for p in map(_condition_problem, staged) if p is not None]
                if problems:
                    failed_plugins.add(plugin_name)
                    dist = _state.dists.get(plugin_name, (None, None))[0]
                    registry.failures.extend(PluginFailure(plugin_name, dist, p) for p in problems)
                    _trace(f"{plugin_name} failed: {'; '.join(problems)}")
                    continue
            for reg in staged:
                existing = registry.entries[kind].get(reg.name)
                if existing is not None:
                    dist = _state.dists.get(plugin_name, (None, None))[0]
                    registry.failures.append(
                        PluginFailure(
                            plugin_name,
                            dist,
                            f"{kind} {reg.name!r} is already registered by {existing.plugin}; "
                            "this registration is ignored",
                        )
                    )
                    continue
                registry.entries[kind][reg.name] = reg
    # A plugin that failed in one hook contributes nothing at all.
    for kind in REGISTRY_KINDS:
        registry.entries[kind] = {
            n: r for n, r in registry.entries[kind].items() if r.plugin not in failed_plugins
        }
    return registry


def get_registry() -> Registry:
    """Everything the loaded plugins registered (cached until plugins change)."""
    with _state.lock:
        pm = get_plugin_manager()
        if _state.registry is None:
            _state.registry = _build_registry(pm)
        return _state.registry


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object at run time (tests, embedding apps). Returns its name."""
    with _state.lock:
        pm = get_plugin_manager()
        registered = pm.register(plugin, name=name)
        if registered is None:
            raise PluginError(f"plugin {name or plugin!r} is already registered")
        _state.registry = None
        return registered


def unregister_plugin(name: str) -> None:
    with _state.lock:
        pm = get_plugin_manager()
        pm.unregister(name=name)
        _state.registry = None


def load_failures() -> list[PluginFailure]:
    return list(get_registry().failures)


def plugin_infos() -> list[PluginInfo]:
    """Every registered plugin with its distribution, version and registrations."""
    pm = get_plugin_manager()
    registry = get_registry()
    infos: list[PluginInfo] = []
    for name, _plugin in pm.list_name_plugin():
        if name is None:
            continue
        registers: dict[str, tuple[str, ...]] = {}
        for kind, entries in registry.entries.items():
            names = tuple(sorted(n for n, r in entries.items() if r.plugin == name))
            if names:
                registers[kind] = names
        builtin = name in DEFAULT_PLUGINS
        dist, version = _state.dists.get(name, (None, None))
        if builtin:
            dist, version = CORE_DISTRIBUTION, _version_of(CORE_DISTRIBUTION)
        infos.append(PluginInfo(name, dist, version, builtin, registers))
    return infos


def _version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def iter_hook_impls(hook_name: str) -> Iterator[Any]:
    return iter(getattr(get_plugin_manager().hook, hook_name).get_hookimpls())


def reset_for_tests() -> None:
    """Forget everything loaded (the next use reloads). For test isolation only."""
    with _state.lock:
        _state.pm = None
        _state.registry = None
        _state.failures = []
        _state.dists = {}
