"""The Aegis plugin contract: every way a plugin can extend Aegis, in one file.

A plugin is any object or module with functions decorated ``@aegis.hookimpl`` whose names are
the hooks below. Installed distributions announce plugins through the ``aegis`` entry-point
group::

    [project.entry-points.aegis]
    my_plugin = "my_package.plugin"

Aegis itself is built the same way: the built-in conditions, approval handlers, audit sinks and
templates live in ``aegis.builtins.*`` and use exactly these hooks.

Registration hooks receive a ``register`` callable and may call it any number of times. Names
are global: the first registration of a name wins, and built-ins always register first — whatever
``tryfirst``/``trylast`` a plugin's hook implementation says — so a plugin cannot replace a
built-in condition; a clash is reported by ``aegis plugins`` against the clashing plugin and its
registration is ignored. A registration hook that raises marks its plugin as failed; nothing it
registered is used, and a policy that names one of its conditions is rejected at load. A
condition registered without a ``schema``, or with one that is not valid JSON Schema (draft
2020-12), or under a reserved name (``all``, ``any``, ``not``), fails its plugin the same way.

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
    """Register approval channels: ``register("slack", SlackChannel)``.

    The object is a factory (called with keyword options from configuration) returning an
    ``ApprovalChannel`` (``aegis.runtime.approval.channels``) or a one-shot ``ApprovalHandler``.
    ``Runtime(approval_handler="slack")`` or ``approval_handler=["slack", "queue"]`` uses it.

    **The channel contract.** When a rule says ``approval: approve`` the runtime first stores
    an ``ApprovalRequest`` in the audit database (id, the action with secrets redacted, its
    digest, the rule's ``approvers`` terms, expiry). Then it calls, on every channel::

        await channel.notify(request, responder)     # post it somewhere; return soon

    A channel *reports* each answer, whenever and from wherever it arrives (a button click
    over Socket Mode, a signed HTTP callback, an e-mail reply), with::

        outcome = await responder.respond(request_id_or_token, responder_id, verdict,
                                          reason, edits, proof)

    where ``responder_id`` is who answered *on that channel* (a Slack user id, an e-mail
    address); the identity checked against the rule's allow list is ``<channel>:<id>``.
    ``verdict`` is ``"approve"`` or ``"deny"``; ``edits`` (approve only) changes params;
    ``proof`` is whatever the channel verified (stored with the answer). The token
    (``AuditStore.approvals.token(request)``) is opaque and unguessable: put it in buttons and
    links instead of the bare id. A channel whose reference comes back from outside (button
    data, a link, a reply) sets ``answers_with_tokens = True``, and the responders of plugin
    routes (``RouteContext.responder``) are the same: a bare id is then refused and audited,
    since a client can send any data for a button and an id is no secret. Another process
    answers through ``AuditStore(url).approvals.respond(...)`` (what ``aegis approvals`` does).

    The core, not the channel, checks every answer: that it names this request and its
    action's digest, that the request is still pending and unexpired, the approver allow list
    (``escalate_to`` after ``escalate_after``), the quorum of distinct approvers, and it stores
    every attempt, refused or not. ``outcome.accepted`` / ``outcome.message`` say what
    happened, so the channel can tell the person ("refused: you may not answer for rule X").
    A channel therefore never decides; it must not treat anything but a verified click or
    command from the platform as an answer.

    Optional: ``settled(request)`` is called once the request is settled (by any channel) so
    the message can be updated ("approved by slack:U123"); ``escalated(request, responder)``
    when ``escalate_after`` passed (default: notify again). ``timeout`` on a channel can only
    shorten the approval window. Errors in ``notify`` are logged; the request then waits for
    the other channels or expires — it is never approved by an error.
    """


@hookspec
def aegis_register_conditions(register: Register) -> None:
    """Register policy conditions: ``register("param_gt", factory, schema={...}, description=...)``.

    ``factory(argument, compile_context)`` returns a check ``(action, eval_context) -> bool |
    None`` (see ``aegis.core.condition``). ``schema`` is the JSON Schema of the argument; it is
    merged into ``aegis schema`` and used to validate policies, so a plugin's condition is
    checked at load exactly like a built-in one. ``schema`` is required.

    A *stateful* condition (history: ``rate_limit``, ``budget``, ``repeat``, ``sequence``) is
    one whose factory returns an ``aegis.core.stateful.StatefulCheck``: it reads
    ``eval_context.state`` (a ``LimitState``; ``None`` in a pure ``Policy.evaluate``, where it
    must answer unknown) and says what an action would consume; the runtime counts it in the
    audit database, in the transaction of the action's write-ahead record (docs/limits.md).
    """


@hookspec
def aegis_register_audit_sinks(register: Register) -> None:
    """Register audit sinks: ``register("jsonl", JsonlSink, description="...")``.

    The object is a factory (usually the class) called with the keyword options a user gives;
    users attach a sink by name: ``AuditStore(url, sinks=["logging", ("jsonl", {"path":
    "audit.jsonl"})])``. The store builds every sink when it is constructed, so an unknown name,
    or options the factory rejects by raising ``TypeError``/``ValueError``/``OSError``, is an
    ``AuditError`` there and then; validate options in the factory, not later.

    The sink it returns has ``emit(records)``: a sequence of committed, final ``AuditRecord``
    objects (never 'pending'), in the order they became final, at most 500 per call. It runs in
    the sink's own background thread, never on an action's path, so blocking I/O is fine, and
    it may return an awaitable (run on that thread's own event loop). Returning means "taken";
    raising means "send this batch again later" (backoff from 0.2 s doubling to 30 s): nothing
    is dropped, and delivery is at least once, so a crash between ``emit`` and saving the cursor
    re-sends a batch (de-duplicate by ``record.id`` if it matters). Optional: ``name`` (the key
    under which the sink's progress is saved in ``aegis_audit_sink_cursor``; two sinks of one
    store must not share one, and a sink keeps its name across restarts to resume where it
    stopped) and ``close()``, called once when the store closes. Records' params are already
    redacted.
    """


@hookspec
def aegis_register_policy_templates(register: Register) -> None:
    """Register policy templates: ``register("crm", Path(".../crm-agent.yaml"), description=...)``.

    ``aegis init --template NAME`` copies the file; ``aegis init --list`` lists them.
    """


@hookspec
def aegis_register_routes(register: Register) -> None:
    """Add HTTP routes to ``aegis serve``: ``register("/slack/interactivity", handler,
    methods=["POST"])``.

    ``handler`` is ``async (aegis.http.HttpRequest) -> aegis.http.HttpResponse``; the request
    carries the raw body, so signature checks (Slack's signing secret, Discord's Ed25519,
    Telegram's secret token) are made on exactly the bytes received. The path may hold
    ``{name}`` parameters (in ``request.params``); ``request.context.responder("slack")`` gives
    the ``Responder`` to report answers with. A route is reachable without the server's API key
    — it must verify its own caller — and anything it reports goes through ``respond`` like any
    other answer. Paths are global; the first registration wins.
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
