"""In-process lifecycle callbacks, for users who want a hook without writing a plugin.

``RuntimeHooks`` mirrors the lifecycle hookspecs (``aegis_on_decision`` ...); each callback may
be sync or async. Both kinds run; the same error rules apply (see ``aegis.hookspecs``).

The original API's signatures keep working: ``on_approval(decision, approved)`` (two
arguments, ``approved`` a bool) and ``on_execute(result)`` (after execution, like
``after_execute``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import attrs

from aegis import plugins

Callback = Callable[..., Any]

_PLUGIN_HOOKS = {
    "on_decision": "aegis_on_decision",
    "on_approval": "aegis_on_approval",
    "before_execute": "aegis_before_execute",
    "after_execute": "aegis_after_execute",
}


@attrs.frozen
class RuntimeHooks:
    on_decision: Callback | None = None
    on_approval: Callback | None = None
    before_execute: Callback | None = None
    after_execute: Callback | None = None
    on_execute: Callback | None = None  # the original API's name: on_execute(result)


async def maybe_await(value: Any) -> Any:
    """Hooks may return a value or an awaitable; resolve both the same way."""
    if inspect.isawaitable(value):
        return await value
    return value


def observed(hooks: RuntimeHooks | None, event: str) -> bool:
    """Whether anyone listens to ``event`` (lets the pipeline skip building a coroutine).

    Asked of pluggy on every call, never cached: a plugin registered on the manager directly
    (a kill switch, say) must be seen by the very next action.
    """
    if hooks is not None and (
        getattr(hooks, event) is not None
        or (event == "after_execute" and hooks.on_execute is not None)
    ):
        return True
    hook = getattr(plugins.get_plugin_manager().hook, _PLUGIN_HOOKS[event])
    return bool(hook.get_hookimpls())


async def fire(hooks: RuntimeHooks | None, event: str, **kwargs: Any) -> str | None:
    """Run the user's callback and every plugin's hook for ``event``.

    Returns None when all succeeded, else a description of the first failure; the caller
    decides what a failure means at that point of the pipeline.
    """
    failure: str | None = None
    for name, callback in _callbacks(hooks, event):
        try:
            await maybe_await(callback(*_arguments(name, callback, kwargs)))
        except Exception as exc:
            failure = failure or f"{name} callback raised {type(exc).__name__}: {exc}"
    hook = getattr(plugins.get_plugin_manager().hook, _PLUGIN_HOOKS[event])
    if not hook.get_hookimpls():
        return failure
    try:
        values = hook(**kwargs)
    except Exception as exc:
        return failure or f"plugin hook {_PLUGIN_HOOKS[event]} raised {type(exc).__name__}: {exc}"
    for value in values:  # await every awaitable, even after one failed
        try:
            await maybe_await(value)
        except Exception as exc:
            failure = failure or (
                f"plugin hook {_PLUGIN_HOOKS[event]} raised {type(exc).__name__}: {exc}"
            )
    return failure


def _callbacks(hooks: RuntimeHooks | None, event: str) -> list[tuple[str, Callback]]:
    if hooks is None:
        return []
    found = [(event, getattr(hooks, event))]
    if event == "after_execute":
        found.append(("on_execute", hooks.on_execute))
    return [(name, cb) for name, cb in found if cb is not None]


def _arguments(name: str, callback: Callback, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The arguments ``callback`` was written for (the original API or the current one)."""
    if name == "on_execute":
        return (kwargs["result"],)
    if name == "on_approval" and _positional_count(callback) == 2:
        return (kwargs["decision"], kwargs["approval"].approved)
    return tuple(kwargs.values())


@functools.lru_cache(maxsize=256)
def _positional_count(callback: Callback) -> int:
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return -1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds)
