"""The Aegis plugin contract: every way a plugin can extend Aegis, in one file.

A plugin is any object or module with functions decorated ``@aegis.hookimpl`` whose names are
the hooks below. Installed distributions announce plugins through the ``aegis`` entry-point
group::

    [project.entry-points.aegis]
    my_plugin = "my_package.plugin"

Aegis itself is built the same way: the built-in conditions, approval handlers, audit sinks and
templates live in ``aegis.builtins.*`` and use exactly these hooks.

Registration hooks receive a ``register`` callable and may call it any number of times. Names
are global: the first registration of a name wins (built-ins register first, so a plugin cannot
silently replace a built-in condition); a clash is reported by ``aegis plugins`` and the clashing
registration is ignored. A registration hook that raises marks its plugin as failed; nothing it
registered is used, and a policy that names one of its conditions is rejected at load.

Lifecycle hooks are observers. They may return an awaitable, which is awaited. Hooks that run
before an action executes (``aegis_on_decision``, ``aegis_on_approval``,
``aegis_before_execute``) are on the path that decides whether the action runs: if one raises,
the action does not run and the audit record says why. ``aegis_after_execute`` errors are
recorded but cannot undo an action that already ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from aegis.core.action import Action
    from aegis.core.approval import ApprovalDecision
    from aegis.core.decision import PolicyDecision
    from aegis.core.result import Result

hookspec = pluggy.HookspecMarker("aegis")
hookimpl = pluggy.HookimplMarker("aegis")


class Register(Protocol):
    """The ``register`` callable passed to the ``aegis_register_*`` hooks."""

    def __call__(self, name: str, obj: Any, /, **options: Any) -> None: ...


# --- registration ------------------------------------------------------------------------------


@hookspec
def aegis_register_executors(register: Register) -> None:
    """Register executors: ``register("httpx", HttpxExecutor)``.

    The object is a factory (usually the class) returning a ``BaseExecutor``; it is called with
    keyword options from configuration (e.g. ``aegis serve --executor httpx``).
    """


@hookspec
def aegis_register_approval_handlers(register: Register) -> None:
    """Register approval handlers: ``register("slack", SlackApprovalHandler)``.

    The object is a factory returning an ``ApprovalHandler``.
    """


@hookspec
def aegis_register_conditions(register: Register) -> None:
    """Register policy conditions: ``register("param_gt", factory, schema={...}, description=...)``.

    ``factory(argument, compile_context)`` returns a check ``(action, eval_context) -> bool |
    None`` (see ``aegis.core.condition``). ``schema`` is the JSON Schema of the argument; it is
    merged into ``aegis schema`` and used to validate policies, so a plugin's condition is
    checked at load exactly like a built-in one. ``schema`` is required.
    """


@hookspec
def aegis_register_audit_sinks(register: Register) -> None:
    """Register audit sinks: ``register("jsonl", JsonlSink)``.

    The object is a factory called with keyword options, returning an ``AuditSink``. Sinks are
    fed from the audit store after records are committed, never on an action's path.
    """


@hookspec
def aegis_register_policy_templates(register: Register) -> None:
    """Register policy templates: ``register("crm", Path(".../crm-agent.yaml"), description=...)``.

    ``aegis init --template NAME`` copies the file; ``aegis init --list`` lists them.
    """


@hookspec
def aegis_register_commands(app: Any) -> None:
    """Add commands to the ``aegis`` CLI. ``app`` is the root ``cyclopts.App``.

    ``aegis-server`` uses this to add ``aegis serve``.
    """


# --- lifecycle observers ------------------------------------------------------------------------


@hookspec
def aegis_on_decision(decision: PolicyDecision) -> Any:
    """Called after the policy decided an action, before approval or execution.

    Raising stops the action (it is recorded as blocked, with the error as the reason).
    """


@hookspec
def aegis_on_approval(action: Action, decision: PolicyDecision, approval: ApprovalDecision) -> Any:
    """Called after a handler answered an approval request (approved, denied or timed out).

    Raising stops the action (recorded as denied).
    """


@hookspec
def aegis_before_execute(action: Action, decision: PolicyDecision) -> Any:
    """Called right before the executor runs an action that was allowed.

    Raising stops the action (recorded as blocked, with the error as the reason).
    """


@hookspec
def aegis_after_execute(action: Action, result: Result) -> Any:
    """Called after execution (and verification) with the result about to be audited.

    Errors are logged and noted in the audit record; the result stands.
    """
