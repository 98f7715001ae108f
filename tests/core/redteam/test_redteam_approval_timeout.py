"""A handler that raises TimeoutError itself is a handler error, not an expired approval window.

Before the fix, with no approval timeout (``approval_timeout=None``) such a handler made
``decide()`` format ``None`` with ``:g``: a TypeError escaped ``run_one`` and no audit record was
written. With a timeout, the record claimed "no answer within 300 s" after a few milliseconds.
"""

from __future__ import annotations

from redteam_helpers import Recorder

from aegis import Action, Policy, Runtime
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.result import ResultStatus
from aegis.runtime.approval.handlers import CallbackApprovalHandler
from aegis.runtime.audit import AuditStore


async def _webhook_gave_up(action: Action, decision: PolicyDecision) -> ApprovalDecision:
    raise TimeoutError("approval webhook did not answer")


async def test_handler_timeout_error_without_runtime_timeout(
    approve_policy: Policy, store: AuditStore
) -> None:
    executor = Recorder()
    async with Runtime(
        executor=executor,
        policy=approve_policy,
        audit=store,
        approval_handler=CallbackApprovalHandler(_webhook_gave_up),
        approval_timeout=None,
    ) as rt:
        result = await rt.run_one(Action("write", "crm"))
    assert executor.ran == []
    assert result.status is ResultStatus.DENIED
    (rec,) = store.query(limit=None)
    assert rec.result == "denied"
    assert "approval webhook did not answer" in (rec.reason or "")


async def test_handler_timeout_error_is_not_reported_as_the_runtime_timeout(
    approve_policy: Policy, store: AuditStore
) -> None:
    executor = Recorder()
    async with Runtime(
        executor=executor,
        policy=approve_policy,
        audit=store,
        approval_handler=CallbackApprovalHandler(_webhook_gave_up),
        approval_timeout=300,
    ) as rt:
        result = await rt.run_one(Action("write", "crm"))
    assert executor.ran == []
    assert result.status is ResultStatus.DENIED
    (rec,) = store.query(limit=None)
    assert "within 300 s" not in (rec.reason or "")
    assert "approval webhook did not answer" in (rec.reason or "")
