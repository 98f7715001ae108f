"""The pipeline for one action: EVALUATE -> APPROVE -> EXECUTE -> VERIFY -> AUDIT, failing closed.

Invariants this module exists to keep:

* An action runs only if the policy in force *now* allows it, a handler explicitly approved it
  when approval is required, every pre-execution hook succeeded, and the audit store has
  written its record. Any error, timeout or cancellation before that point means "not executed".
* Every action ends with exactly one audit record (a rollback action gets its own, linked to the
  step it compensates). Outcomes that never reach the executor are recorded in one write
  (stops.py); executed ones are written before execution and completed after (recorded.py). If
  the store cannot write, ``AuditError`` is raised and nothing runs; the record is committed
  before ``run_one`` returns.

Kept apart from the ``Runtime`` (engine.py), which is what a user builds, opens and calls: this
is what happens to every action, once per action, so it is written for the hot path (no
coroutine that a step does not need, no object built that it does not use).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.errors import AuditError
from aegis.runtime import limit_state
from aegis.runtime.approval.alongside import delivered, unwritten
from aegis.runtime.approval.flow import Sought, handed_over, seek_approval
from aegis.runtime.execution import join_reasons
from aegis.runtime.hooks import fire, observed
from aegis.runtime.recorded import execute_recorded, shielded
from aegis.runtime.shadow import ShadowVerdict, consult
from aegis.runtime.stops import blocked_decision, record_stop

if TYPE_CHECKING:
    from aegis.runtime.audit.writer import SideWrite
    from aegis.runtime.engine import Runtime


log = logging.getLogger("aegis.runtime")


@attrs.frozen
class Authorization:
    """An action allowed (and approved, if it had to be) whose record is begun, not finished.

    Whoever runs it reports the outcome with ``AuditStore.finish(audit_id, result)``.
    """

    action: Action
    decision: PolicyDecision
    approval: ApprovalDecision | None
    audit_id: int


async def run_action(
    runtime: Runtime,
    action: Action,
    *,
    dry_run: bool,
    parent_id: int | None = None,
    note: str | None = None,
    executor: BaseExecutor | None = None,
    authorize: bool = False,
    detached: bool = False,
    side_write: SideWrite | None = None,
    remap_edit: Callable[[Action], Action] | None = None,
) -> Result | Authorization:
    """``action`` through the pipeline: its audited ``Result``, or with ``authorize`` (and
    allowed) the ``Authorization`` of a record begun for someone else to finish."""
    if not runtime._opened:  # no coroutine per action once open
        await runtime.open()
    action = runtime.bind(action)

    # 1 EVALUATE (with the shadow's verdict and the on_decision hook)
    try:
        decision = (
            await limit_state.decide(runtime, action)  # a server's snapshot: off the loop
            if limit_state.reads_a_server(runtime)
            else runtime._decide(action)
        )
    except BaseException as exc:  # past _decide's Exception guard: Ctrl-C, SystemExit...
        await _record_interrupted(runtime, action, exc, parent_id, note)
        raise
    approval: ApprovalDecision | None = None
    shadow: ShadowVerdict | None = None

    def stop(status: ResultStatus, reason: str) -> Awaitable[Result]:
        """Record the action as not run (reads ``approval`` as it is when called)."""
        return record_stop(
            runtime,
            action,
            decision,
            status,
            reason,
            approval=approval,
            parent_id=parent_id,
            note=note,
            shadow=shadow,
        )

    candidate = runtime._shadow  # inline when it can: no coroutine on the hot path
    if candidate is not None:
        shadow = candidate.inline_verdict(action) or await consult(candidate, action, stop)

    blocked, denied = ResultStatus.BLOCKED, ResultStatus.DENIED
    if observed(runtime.hooks, "on_decision"):
        stopped = await _gate(runtime, "on_decision", blocked, stop, decision=decision)
        if stopped is not None:
            return stopped
    if not decision.is_allowed:
        return await stop(
            blocked,
            decision.reason or f"blocked by rule {decision.matched_rule or '(defaults)'}",
        )
    if dry_run:
        return await stop(ResultStatus.SKIPPED, f"dry run: would be {decision.approval.value}")

    # 2 APPROVE, when the decision asks for it; an approver's edit runs as its own record
    sought: Sought | None = None
    if decision.requires_approval:
        try:
            sought = await seek_approval(
                runtime, action, decision, runtime.channels, remap_edit=remap_edit
            )
        except asyncio.CancelledError as exc:
            if not handed_over(exc):  # handed over: its adopter records it
                await shielded(stop(denied, "cancelled while awaiting approval"))
            raise
        except AuditError as exc:  # the request could not be stored: nobody may be asked
            return await stop(blocked, f"approval request could not be stored: {exc}")
        except BaseException as exc:  # SystemExit, KeyboardInterrupt while asking
            await shielded(
                stop(
                    denied,
                    f"interrupted by {type(exc).__name__} while "
                    "awaiting approval; the action did not run",
                )
            )
            raise
        approval = sought.approval
        if observed(runtime.hooks, "on_approval"):
            stopped = await _gate(
                runtime,
                "on_approval",
                denied,
                stop,
                action=action,
                decision=decision,
                approval=approval,
            )
            if stopped is not None:
                return stopped
        if sought.status is not None:
            return await stop(sought.status, sought.reason or "denied")
        if sought.original is not None:  # edited: the original is closed, the edit runs
            parent_id = await _record_edit(runtime, sought, parent_id, note, shadow)
            note = None
            if candidate is not None:
                shadow = await consult(candidate, sought.action, stop)
        action, decision = sought.action, sought.decision  # the decision it runs under

    if observed(runtime.hooks, "before_execute"):
        stopped = await _gate(
            runtime, "before_execute", blocked, stop, action=action, decision=decision
        )
        if stopped is not None:
            return stopped

    # 3-5 EXECUTE, VERIFY, AUDIT; or, for authorize, begin the record for the caller to finish
    result: Result | Authorization
    if not authorize:
        result = await execute_recorded(
            runtime,
            action,
            decision,
            approval,
            parent_id,
            note,
            executor or runtime.executor,
            shadow,
        )
    else:
        # A stateful policy's limits are counted in the same write (and may stop it there).
        begin = (
            limit_state.begin_limited
            if getattr(runtime._policy, "stateful", False)
            else _begin_unlimited
        )
        try:
            begun = await begin(
                runtime,
                action,
                decision,
                approval,
                parent_id=parent_id,
                detached=detached,
                shadow=shadow,
                side_write=side_write,
            )
            if isinstance(begun, Result):
                return begun
            result = Authorization(action, begun[1], delivered(approval), begun[0])
        except AuditError as exc:
            if unwritten(approval) is None:
                raise
            # The auto answer and its request went with the record: none of them exists now.
            # Record the stop on its own (as execute_recorded does for run_one).
            return await record_stop(
                runtime,
                action,
                decision,
                blocked,
                f"approval request could not be stored: {exc}",
                parent_id=parent_id,
                note=note,
                shadow=shadow,
            )
    if sought is not None and sought.request_id and result.audit_id is not None:
        _link_request(runtime, sought.request_id, result.audit_id)
    return result


async def _begin_unlimited(
    runtime: Runtime,
    action: Action,
    decision: PolicyDecision,
    approval: ApprovalDecision | None,
    **kwargs: Any,
) -> tuple[int, PolicyDecision]:
    """``limit_state.begin_limited``'s shape for a policy with no limits: the record begun,
    under the decision as it is."""
    return await runtime.audit.begin(action, decision, approval, **kwargs), decision


def _record_interrupted(
    runtime: Runtime,
    action: Action,
    exc: BaseException,
    parent_id: int | None,
    note: str | None,
) -> Awaitable[Result]:
    """Record the action as blocked because deciding it was interrupted (Ctrl-C, SystemExit,
    past ``_decide``'s guard); the caller re-raises. Returns the write to await: no coroutine
    of its own."""
    reason = f"policy evaluation was interrupted: {type(exc).__name__}; not run"
    return record_stop(
        runtime,
        action,
        blocked_decision(action, reason),
        ResultStatus.BLOCKED,
        reason,
        parent_id=parent_id,
        note=note,
    )


async def _record_edit(
    runtime: Runtime,
    sought: Sought,
    parent_id: int | None,
    note: str | None,
    shadow: ShadowVerdict | None,
) -> int:
    """Close the submitted action's record before its edited version runs, linked to it."""
    original = sought.original
    assert original is not None
    edited_by = sought.approval.approver or "an approver"
    reason = join_reasons(
        note,
        f"edited by {edited_by} before approval (request {sought.request_id});"
        " the edited action runs as the next record",
    )
    stopped = Result(
        original,
        ResultStatus.SKIPPED,
        decision=await limit_state.decide(runtime, original),
        approval=sought.approval,
        reason=reason,
    )
    return await runtime.audit.record(stopped, parent_id=parent_id, shadow=shadow)


def _link_request(runtime: Runtime, request_id: str, audit_id: int) -> None:
    """Point the request at the action's record, off the action's path (see defer_link)."""
    try:
        runtime.audit.approvals.defer_link(request_id, audit_id)
    except Exception:  # the action ran and is audited; the link is a convenience
        log.exception("could not link approval request %s to record %s", request_id, audit_id)


async def _gate(
    runtime: Runtime,
    event: str,
    status: ResultStatus,
    stop: Callable[[ResultStatus, str], Awaitable[Result]],
    **kwargs: Any,
) -> Result | None:
    """Fire a hook that runs before execution; a failure in it stops the action with
    ``status``. Returns that stop's result, None when the hook passed.

    Callers check ``observed`` first, so an unobserved event costs no coroutine.

    A task cancelled inside the hook is recorded as stopped with ``status`` before the
    cancellation goes on: the action did not run, and the audit must say so (unless it
    was handed over: the process that took it records it).
    """
    try:
        failure = await fire(runtime.hooks, event, **kwargs)
    except asyncio.CancelledError as exc:
        if not handed_over(exc):
            await shielded(stop(status, f"cancelled in the {event} hook; the action did not run"))
        raise
    return await stop(status, failure) if failure else None
