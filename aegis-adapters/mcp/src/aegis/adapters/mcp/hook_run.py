"""What a hook does with one call: decide, maybe wait for a human, write the audit, answer.

It uses the runtime's own parts (``evaluate``, the approval handler through
``aegis.runtime.approval.decide``, the audit store's write-ahead ``begin`` / ``finish``) because
the tool runs in the coding agent, not in an Aegis executor: ``PreToolUse`` writes a pending
row, ``PostToolUse`` (another process) completes it. Which row belongs to which call is kept
in ``aegis_hook_calls`` (tool_use_id -> audit id) in the same database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

import attrs
from aegis.adapters.mcp.hooks import HookCall
from sqlalchemy import BigInteger, Column, MetaData, String, Table, create_engine, delete, select

from aegis.core.action import Action, with_identity
from aegis.core.approval import ApprovalDecision
from aegis.core.result import Result, ResultStatus

metadata = MetaData()
calls_table = Table(
    "aegis_hook_calls",
    metadata,
    Column("tool_use_id", String(255), primary_key=True),
    Column("audit_id", BigInteger, nullable=False),
    Column("created_at", String(32), nullable=False),
)


@attrs.frozen
class Answer:
    decision: str  # allow | deny | ask
    reason: str
    updated_input: dict[str, Any] | None = None  # the approver's edit, for ``updatedInput``


def _bind(runtime: Any, action: Action) -> Action:
    agent = runtime.agent_id if runtime.agent_id is not None else action.agent_id
    return with_identity(action, agent, action.session_id or runtime.session_id)


async def pre_tool_use(runtime: Any, call: HookCall, *, wait_rules: Collection[str]) -> Answer:
    from aegis.adapters.mcp import explain

    from aegis.runtime.approval_flow import seek_approval

    await runtime.open()
    action = _bind(runtime, call.action)
    decision = runtime.evaluate(action)
    rule = decision.matched_rule or "(defaults)"
    if not decision.is_allowed:
        result = await runtime.run_one(action)  # the core records the block itself
        return Answer("deny", explain(result))
    # The observers a plugin may use to veto an action run here too, as in run_one.
    failure = await _vetoed(runtime, "on_decision", decision=decision)
    if failure:
        return await _stop(runtime, action, decision, None, failure)
    approval: ApprovalDecision | None = None
    updated: dict[str, Any] | None = None
    if decision.requires_approval:
        if rule in wait_rules or "*" in wait_rules:
            # The core's approval flow: a durable request, answered on the runtime's channels
            # (or from another process: `aegis approvals approve ID`), re-checked afterwards.
            sought = await seek_approval(runtime, action, decision, runtime.channels)
            if sought.status is not None:
                stopped = Result(
                    sought.action,
                    sought.status,
                    decision=sought.decision,
                    approval=sought.approval,
                    reason=sought.reason or "denied",
                )
                audit_id = await runtime.audit.record(stopped)
                return Answer("deny", explain(attrs.evolve(stopped, audit_id=audit_id)))
            approval = sought.approval
            if sought.original is not None:  # an approver edited the input: the edit runs
                updated = _plain(sought.action.params)
            action, decision = sought.action, sought.decision
        else:
            # Claude Code's own permission prompt is the approval channel for this rule. The row
            # stays pending unless PostToolUse reports that the tool ran.
            approval = ApprovalDecision(
                True,
                approver=None,
                reason="delegated to the coding agent's permission prompt",
                handler=f"{call.action.metadata.get('hook', 'hook')}:ask",
            )
    failure = await _vetoed(runtime, "before_execute", action=action, decision=decision)
    if failure:
        return await _stop(runtime, action, decision, approval, failure)
    audit_id = await runtime.audit.begin(action, decision, approval, detached=True)
    if call.tool_use_id:
        _remember(runtime.audit.url, call.tool_use_id, audit_id)
    if approval is not None and approval.handler and approval.handler.endswith(":ask"):
        return Answer("ask", f"Aegis rule {rule!r} needs a human's approval (audit #{audit_id}).")
    if approval is not None:
        who = approval.approver or approval.handler or "a human"
        edited = " with edited input" if updated is not None else ""
        reason = f"Approved{edited} by {who} (rule {rule!r}, audit #{audit_id})."
        return Answer("allow", reason, updated)
    return Answer("allow", f"Allowed by Aegis rule {rule!r} (audit #{audit_id}).")


async def post_tool_use(runtime: Any, call: HookCall) -> None:
    await runtime.open()
    action = _bind(runtime, call.action)
    response = call.payload.get("tool_response")
    failed = isinstance(response, dict) and (
        response.get("success") is False
        or bool(response.get("is_error"))
        or bool(response.get("interrupted"))
    )
    status = ResultStatus.FAILED if failed else ResultStatus.SUCCESS
    error = _error_text(response) if failed else None
    audit_id = _take(runtime.audit.url, call.tool_use_id) if call.tool_use_id else None
    if audit_id is not None:
        result = Result(action, status, error=error, reason="ran in the coding agent", attempts=1)
        await runtime.audit.finish(audit_id, result)
        return
    # No PreToolUse row (the hook was installed mid-call, or Pre ran elsewhere): still record it.
    decision = runtime.evaluate(action)
    orphan = Result(
        action,
        status,
        decision=decision,
        error=error,
        reason="PostToolUse without a PreToolUse record from this hook",
        attempts=1,
    )
    await runtime.audit.record(orphan)


async def _vetoed(runtime: Any, event: str, **kwargs: Any) -> str | None:
    from aegis.runtime.hooks import fire, observed

    return await fire(runtime.hooks, event, **kwargs) if observed(runtime.hooks, event) else None


async def _stop(
    runtime: Any, action: Action, decision: Any, approval: ApprovalDecision | None, reason: str
) -> Answer:
    from aegis.adapters.mcp import explain

    stopped = Result(
        action, ResultStatus.BLOCKED, decision=decision, approval=approval, reason=reason
    )
    audit_id = await runtime.audit.record(stopped)
    return Answer("deny", explain(attrs.evolve(stopped, audit_id=audit_id)))


def _plain(value: Any) -> Any:
    """Frozen params back to JSON-ready dicts and lists (for ``updatedInput``)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _error_text(response: Any) -> str:
    if isinstance(response, dict):
        for key in ("error", "stderr", "message"):
            if isinstance(response.get(key), str) and response[key]:
                return str(response[key])[:2000]
    return "the tool reported a failure"


def _engine(url: str) -> Any:
    engine = create_engine(url)
    metadata.create_all(engine)
    return engine


def _remember(url: str, tool_use_id: str, audit_id: int) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(calls_table).where(calls_table.c.tool_use_id == tool_use_id))
            conn.execute(
                calls_table.insert().values(
                    tool_use_id=tool_use_id,
                    audit_id=audit_id,
                    created_at=dt.datetime.now(dt.UTC).isoformat(),
                )
            )
    finally:
        engine.dispose()


def _take(url: str, tool_use_id: str) -> int | None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            row = conn.execute(
                select(calls_table.c.audit_id).where(calls_table.c.tool_use_id == tool_use_id)
            ).first()
            if row is None:
                return None
            conn.execute(delete(calls_table).where(calls_table.c.tool_use_id == tool_use_id))
            return int(row[0])
    finally:
        engine.dispose()
