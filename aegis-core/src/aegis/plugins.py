"""Finding, loading and asking plugins.

Loading is lazy and happens once: the first call to ``get_plugin_manager()`` (or anything that
needs the registry) registers the built-in plugins, then every entry point in the ``aegis``
group. Environment switches:

* ``AEGIS_PLUGINS`` — comma-separated entry-point names to load; empty string loads none
  (built-ins always load). Unset: load all installed.
* ``AEGIS_DISABLE_PLUGINS`` — comma-separated entry-point names never to load.
* ``AEGIS_TRACE_PLUGINS=1`` — print every hook call (pluggy's tracing) to stderr.

A plugin that fails to import or to register is recorded in ``load_failures()`` and shown by
``aegis plugins``; it never takes Aegis down, and anything it would have registered is absent
(so a policy naming its condition is rejected rather than silently weakened).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import threading
from collections.abc import Callable, Iterator
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


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    only = _env_list("AEGIS_PLUGINS")
    disabled = set(_env_list("AEGIS_DISABLE_PLUGINS") or [])
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in disabled or (only is not None and ep.name not in only):
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
            continue
        _state.dists[ep.name] = (dist_name, dist_version)


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
            _load_entry_points(pm)
            if os.environ.get("AEGIS_TRACE_PLUGINS"):
                pm.trace.root.setwriter(lambda msg: sys.stderr.write(str(msg)))
                pm.enable_tracing()
            _state.pm = pm
        return _state.pm


def _make_register(staged: list[Registration], kind: str, plugin_name: str) -> Callable[..., None]:
    def register(name: str, obj: Any, /, **options: Any) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"{kind} names must be non-empty strings, got {name!r}")
        staged.append(Registration(kind, name, obj, plugin_name, dict(options)))

    return register


def _build_registry(pm: pluggy.PluginManager) -> Registry:
    registry = Registry(failures=list(_state.failures))
    failed_plugins: set[str] = set()
    for kind, hook_name in REGISTRY_KINDS.items():
        hook = getattr(pm.hook, hook_name)
        # get_hookimpls() is in registration order: built-ins first, so a third-party plugin
        # cannot take over a built-in name.
        for impl in hook.get_hookimpls():
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
