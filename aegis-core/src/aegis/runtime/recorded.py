"""The write-ahead step: the record is begun before the executor runs and finished after it,
whatever happens in between (an exception, cancellation, ``SystemExit``).

This is the one place an allowed action reaches its executor, so it is kept small and apart from
the deciding steps in pipeline.py; "an action missing from the audit" can only come from here.

``answer_early``: a caller that relays the outcome to someone waiting (the MCP proxy on stdio)
sets it around ``run_one`` to pass the result on while the outcome record is being committed,
instead of after. It is called at most once, with the result ``run_one`` will return, after the
executor and the ``after_execute`` hooks and just before the outcome is written; the write-ahead
row is committed by then, so a crash between the two leaves a pending row that the store marks
``interrupted`` when it is opened again. ``run_one`` still returns (or raises an ``AuditError``)
only once the outcome is committed, so a caller that awaits it never loses the outcome on a clean
shutdown. Not called when the action did not run or was cancelled, or when closing its record
broke (an internal error past the executor): those end as ``run_one`` ends. The executor runs
with it unset, so an action the executor governs in turn cannot answer in its place. An
exception from it is logged and the outcome is committed anyway.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.core.stateful import Usage
from aegis.errors import AuditError
from aegis.runtime import limit_state
from aegis.runtime.approval.alongside import delivered, unwritten
from aegis.runtime.execution import execute_and_verify, join_reasons
from aegis.runtime.hooks import fire, observed
from aegis.runtime.stops import record_stop

if TYPE_CHECKING:
    from aegis.runtime.engine import Runtime
    from aegis.runtime.shadow import ShadowVerdict

log = logging.getLogger("aegis.runtime")

#: See the module docstring: called with the result before its outcome is committed.
answer_early: contextvars.ContextVar[Callable[[Result], None] | None] = contextvars.ContextVar(
    "aegis_answer_early", default=None
)


async def execute_recorded(
    runtime: Runtime,
    action: Action,
    decision: PolicyDecision,
    approval: ApprovalDecision | None,
    parent_id: int | None,
    note: str | None,
    executor: BaseExecutor,
    shadow: ShadowVerdict | None = None,
) -> Result:
    """Write ahead, run with ``executor``, and complete the record; returns the final result."""
    consumed: tuple[Usage, ...] = ()  # not counted again by a retry's second look
    with_request = unwritten(approval) is not None  # its request goes in the same transaction
    try:
        if getattr(runtime._policy, "stateful", False):  # decided finally in the write: limits
            begun = await limit_state.begin_limited(
                runtime, action, decision, approval, parent_id=parent_id, note=note, shadow=shadow
            )
            if isinstance(begun, Result):
                return begun
            audit_id, decision, consumed = begun
        else:
            audit_id = await runtime.audit.begin(
                action, decision, approval, parent_id=parent_id, shadow=shadow
            )
        if with_request:  # the caller gets a plain approval with the seal now written
            approval = delivered(approval)
    except AuditError as exc:
        if not with_request:
            raise
        # Nothing of that transaction was written; record the stop on its own if we can.
        reason = f"approval request could not be stored: {exc}"
        return await record_stop(
            runtime,
            action,
            decision,
            ResultStatus.BLOCKED,
            reason,
            parent_id=parent_id,
            note=note,
            shadow=shadow,
        )
    finished: Result | None = None  # what the action did, once the executor is done
    started = utcnow()
    answer = answer_early.get()
    if answer is not None:  # not for actions the executor runs through a runtime itself
        unset = answer_early.set(None)
    try:
        raw, updates = await execute_and_verify(
            executor,
            action,
            decision,
            retry=runtime.retry,
            timeout=runtime.execution_timeout,
            reevaluate=functools.partial(limit_state.decide_retry, runtime, consumed),
        )
        get = updates.get
        result = Result(  # built directly: this runs once per action on the hot path
            action,
            get("status", raw.status),
            raw.data,
            get("error", raw.error),
            decision,
            approval,
            join_reasons(note, raw.reason, get("reason")),
            updates["duration_ms"],
            updates["attempts"],
            get("verified", raw.verified),
            audit_id,
            None,  # only the runtime attaches rollback results, after running them itself
            raw.started_at or started,
            raw.completed_at or utcnow(),
        )
        finished = result
        failure = (
            await fire(runtime.hooks, "after_execute", action=action, result=result)
            if observed(runtime.hooks, "after_execute")
            else None
        )
        if failure:
            result = attrs.evolve(result, reason=join_reasons(result.reason, failure))
    except asyncio.CancelledError:
        if finished is not None:  # cancelled in after_execute: the action is done
            cancelled = attrs.evolve(
                finished,
                reason=join_reasons(finished.reason, "cancelled in the after_execute hook"),
            )
        else:
            cancelled = Result(
                action,
                ResultStatus.FAILED,
                error="cancelled during execution",
                decision=decision,
                approval=approval,
                audit_id=audit_id,
                reason="the task running the action was cancelled; the action may have partly run",
                attempts=1,
            )
        await shielded(runtime.audit.finish(audit_id, cancelled))
        raise
    except Exception as exc:  # a bug past the executor call: still close the record
        broken = Result(
            action,
            ResultStatus.FAILED,
            error=f"internal error after the executor was called: {type(exc).__name__}: {exc}",
            decision=decision,
            approval=approval,
            audit_id=audit_id,
            attempts=1,
        )
        await runtime.audit.finish(audit_id, broken)
        raise
    except BaseException as exc:  # SystemExit, KeyboardInterrupt: close the record, go on
        interrupted = Result(
            action,
            ResultStatus.FAILED,
            error=f"interrupted by {type(exc).__name__} during execution",
            decision=decision,
            approval=approval,
            audit_id=audit_id,
            reason="the process was told to stop; the action may have partly run",
            attempts=1,
        )
        await shielded(runtime.audit.finish(audit_id, interrupted))
        raise
    finally:
        if answer is not None:
            answer_early.reset(unset)
    if answer is not None:
        try:
            answer(result)
        except Exception:
            log.exception("answering early failed; the outcome is recorded regardless")
    await runtime.audit.finish(audit_id, result)
    return result


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def shielded(awaitable: Any) -> None:
    """Finish an audit write even though our task is being cancelled."""
    try:
        await asyncio.shield(asyncio.ensure_future(awaitable))
    except Exception:
        log.exception("could not record the outcome of a cancelled action")
