"""What a hook does with one call: decide, maybe wait for a human, write the audit, answer.

The tool runs in the coding agent, not in an Aegis executor, so ``PreToolUse`` goes through
``Runtime.authorize``: ``run_one``'s pipeline (lifecycle hooks, the durable approval request
answered on a channel or from another process, the re-check, an approver's edit closing the
submitted call's record as edited, the request linked to the record of what runs, the answers
sealed into it), stopped before the executor with a pending row. ``PostToolUse`` (maybe
another process) completes that row. An approver's edit is mapped as the call was
(``mapping.edited_action``): the policy decides, and the audit records, the call that runs.
An approve rule the hook does not wait on is the agent's own prompt (``ask``), written here.

Which row belongs to which call is kept in the same database, written in the same
transactions as the row (``pairing``, the ``side_write`` of ``authorize`` and ``finish``). A
row whose report never comes (the user declined an ``ask``, Cursor sends no event after a
read, the agent crashed) is closed by ``reap`` once due as failed, "outcome not reported":
never left pending, never called a success nobody saw.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

import attrs
from aegis.adapters.hooks import mapping, pairing
from aegis.adapters.hooks.mapping import HookCall

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.result import Result, ResultStatus
from aegis.errors import AuditError
from aegis.runtime.audit.writer import SideWrite

log = logging.getLogger("aegis.hooks")

#: Seconds after which an allowed call that nobody reported is closed as "outcome not reported".
DEFAULT_REPORT_TIMEOUT = 3600.0


@attrs.frozen
class Answer:
    decision: str  # allow | deny | ask
    reason: str
    updated_input: dict[str, Any] | None = None  # the approver's edit, for ``updatedInput``


async def pre_tool_use(
    runtime: Any,
    call: HookCall,
    *,
    wait_rules: Collection[str],
    can_ask: bool = True,
    report_timeout: float = DEFAULT_REPORT_TIMEOUT,
) -> Answer:
    """``can_ask``: the agent has a permission prompt of its own that an ``ask`` answer opens
    (Claude Code, Cursor). Without one (Codex, whose hooks cannot ask), an approve rule that is
    not waited on is denied, since an unanswerable ``ask`` may run the call anyway."""
    await runtime.open()
    action, decision = runtime.strictest([call.action, *call.candidates])
    rule = decision.matched_rule or "(defaults)"
    waited = rule in wait_rules or "*" in wait_rules
    if decision.requires_approval and not waited:
        return await _not_waited(runtime, call, action, decision, rule, can_ask, report_timeout)
    # Allowed, blocked, or waited on a channel: run_one's own pipeline (hooks, the durable
    # request answered from any process, re-check, an edit closing the submitted call's record,
    # the request linked to the record of what runs, the answers sealed into it), stopped
    # before the executor: the pending row is written with its pairing, the agent runs the tool.
    side = await _pairing(runtime, call, report_timeout)

    def remap(edited: Action) -> Action:  # an edited input is mapped as the call was
        return mapping.edited_action(call, _plain(edited.params))

    try:
        out = await runtime.authorize(action, detached=True, side_write=side, remap_edit=remap)
    except AuditError as exc:  # neither the row nor its pairing was written
        reason = f"its audit record could not be written, so it is not run: {exc}"
        return await _stop(runtime, action, decision, None, reason)
    if isinstance(out, Result):
        return Answer("deny", explain(out))
    approval = out.approval
    if approval is None:
        return Answer("allow", f"Allowed by Aegis rule {rule!r} (audit #{out.audit_id}).")
    who = approval.approver or approval.handler or "a human"
    updated = _plain(out.action.params) if approval.edited else None
    edited = " with edited input" if updated is not None else ""
    reason = f"Approved{edited} by {who} (rule {rule!r}, audit #{out.audit_id})."
    return Answer("allow", reason, updated)


async def _not_waited(
    runtime: Any,
    call: HookCall,
    action: Action,
    decision: Any,
    rule: str,
    can_ask: bool,
    report_timeout: float,
) -> Answer:
    """An approve rule not waited on: the agent's own prompt asks, or (no prompt) a deny."""
    from aegis.runtime.limit_state import begin_limited

    # The observers a plugin may use to veto an action run here too, as in run_one.
    failure = await _vetoed(runtime, "on_decision", decision=decision)
    if failure:
        return await _stop(runtime, action, decision, None, failure)
    if not can_ask:
        reason = (
            f"rule {rule!r} needs a human's approval and this agent's hooks cannot ask; "
            "run the hook with --wait RULE and an --approval-handler to ask a channel"
        )
        return await _stop(runtime, action, decision, None, reason, ResultStatus.DENIED)
    agent = str(call.action.metadata.get("hook", "hook"))
    unmet = _prompt_unmet(decision, agent)
    if unmet:
        return await _stop(runtime, action, decision, None, unmet, ResultStatus.DENIED)
    # The agent's own permission prompt is the approval channel for this rule. The row is
    # completed by the agent's report, or closed by ``reap`` as not reported.
    approval = ApprovalDecision(
        True,
        approver=None,
        reason="delegated to the coding agent's permission prompt",
        handler=f"{agent}:ask",
    )
    failure = await _vetoed(runtime, "before_execute", action=action, decision=decision)
    if failure:
        return await _stop(runtime, action, decision, approval, failure)
    side = await _pairing(runtime, call, report_timeout)
    try:
        if getattr(runtime.policy, "stateful", False):
            # Limits are counted with the write-ahead row, decided finally under its lock.
            begun = await begin_limited(
                runtime, action, decision, approval, detached=True, side_write=side
            )
            if isinstance(begun, Result):
                return Answer("deny", explain(begun))
            audit_id = begun[0]
        else:
            audit_id = await runtime.audit.begin(
                action, decision, approval, detached=True, side_write=side
            )
    except AuditError as exc:  # neither the row nor its pairing was written
        reason = f"its audit record could not be written, so it is not run: {exc}"
        return await _stop(runtime, action, decision, approval, reason)
    return Answer("ask", f"Aegis rule {rule!r} needs a human's approval (audit #{audit_id}).")


def _prompt_unmet(decision: Any, agent: str) -> str | None:
    """Why the agent's prompt cannot stand in for the rule's approvers, if it cannot.

    Whoever sits at the prompt answers once and unnamed, as ``prompt:<agent>``: a rule that
    names its approvers (and not that) or wants a quorum is not met by it, so it is denied
    rather than handed to a keyboard the rule did not trust."""
    needs = decision.requirements
    if needs is None:
        return None
    who = f"prompt:{agent}"
    if needs.quorum <= 1 and needs.allows(who):
        return None
    rule = decision.matched_rule or "(defaults)"
    return (
        f"rule {rule!r} needs {needs.describe()} to approve; this agent's own prompt answers "
        f"once, as {who}; run the hook with --wait {rule} and an --approval-handler that "
        "reaches them"
    )


async def _pairing(runtime: Any, call: HookCall, report_timeout: float) -> SideWrite:
    """The side write pairing the pending row with the call (its table made sure of once)."""
    if not pairing.ready(runtime.audit.url):
        await asyncio.to_thread(pairing.engine, runtime.audit.url)
    return pairing.pair(call.tool_use_id or None, time.time() + report_timeout)


async def post_tool_use(runtime: Any, call: HookCall) -> None:
    await runtime.open()
    action = runtime.bind(call.action)
    response = call.payload.get("tool_response")
    if call.event == "PostToolUseFailure":  # Claude Code's report of a tool that failed
        failed, response = True, {"error": call.payload.get("error")}
    else:
        failed = isinstance(response, dict) and (
            response.get("success") is False
            or bool(response.get("is_error"))
            or bool(response.get("interrupted"))
            or response.get("exit_code") not in (None, 0)
        )
    status = ResultStatus.FAILED if failed else ResultStatus.SUCCESS
    error = _error_text(response) if failed else None
    url = runtime.audit.url
    audit_id = (
        await asyncio.to_thread(pairing.paired, url, call.tool_use_id) if call.tool_use_id else None
    )
    why = "PostToolUse without a PreToolUse record from this hook"
    if audit_id is not None:
        result = Result(action, status, error=error, reason="ran in the coding agent", attempts=1)
        try:
            await runtime.audit.finish(audit_id, result, side_write=pairing.unpair)
            return
        except AuditError:
            if await _still_pending(runtime, audit_id):
                raise  # the pairing stays: reported again, or closed when due
            await asyncio.to_thread(pairing.drop, url, audit_id)
            why = f"reported after its record (audit #{audit_id}) was closed as not reported"
    # No PreToolUse row (the hook was installed mid-call, or Pre ran elsewhere): still record it.
    decision = runtime.evaluate(action)
    orphan = Result(action, status, decision=decision, error=error, reason=why, attempts=1)
    await runtime.audit.record(orphan)


async def _still_pending(runtime: Any, audit_id: int) -> bool:
    record = await asyncio.to_thread(runtime.audit.get, audit_id)
    return record is not None and record.result == "pending"


async def _vetoed(runtime: Any, event: str, **kwargs: Any) -> str | None:
    from aegis.runtime.hooks import fire, observed

    return await fire(runtime.hooks, event, **kwargs) if observed(runtime.hooks, event) else None


async def _stop(
    runtime: Any,
    action: Action,
    decision: Any,
    approval: ApprovalDecision | None,
    reason: str,
    status: ResultStatus = ResultStatus.BLOCKED,
) -> Answer:
    from aegis.runtime.stops import record_stop

    stopped = await record_stop(runtime, action, decision, status, reason, approval=approval)
    return Answer("deny", explain(stopped))


def explain(result: Result) -> str:
    """What the agent is told about a call that was not run (``Result.refusal``)."""
    return result.refusal()


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


async def reap(runtime: Any, now: float | None = None) -> int:
    """Close the records whose report is overdue as failed, "outcome not reported".

    A row that cannot be closed now (the write failed) keeps its pairing and is tried again
    on the next sweep; it never stops the sweep, nor the call that runs it.
    """
    at = time.time() if now is None else now
    url = runtime.audit.url
    closed = 0
    for audit_id in await asyncio.to_thread(pairing.overdue, url, at):
        record = await asyncio.to_thread(runtime.audit.get, audit_id)
        if record is None or record.result != "pending":
            await asyncio.to_thread(pairing.drop, url, audit_id)  # closed some other way
            continue
        unreported = Result(
            Action(record.action_type, record.target),
            ResultStatus.FAILED,
            error="outcome not reported",
            reason="allowed, but the coding agent reported no outcome in time (declined at its "
            "prompt, an event it does not report, or it stopped); whether the tool ran is unknown",
        )
        try:
            await runtime.audit.finish(audit_id, unreported, side_write=pairing.unpair)
        except AuditError as exc:
            if await _still_pending(runtime, audit_id):
                log.warning("audit #%s is overdue and could not be closed now: %s", audit_id, exc)
            continue  # or it was reported a moment ago: its pairing went with the report
        closed += 1
    return closed
