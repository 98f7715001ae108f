"""Runtime.authorize: decide and approve an action someone else runs; the record waits."""

from __future__ import annotations

from runtime_helpers import RecordingExecutor, rows

from aegis import Action, Policy, Runtime
from aegis.core.result import Result, ResultStatus
from aegis.runtime.approval.handlers import CallbackApprovalHandler
from aegis.runtime.audit import AuditStore
from aegis.runtime.engine import Authorization


async def test_allowed_action_is_begun_not_executed(
    runtime: Runtime, executor: RecordingExecutor, store: AuditStore
) -> None:
    out = await runtime.authorize(Action("read_contacts", "crm"))
    assert isinstance(out, Authorization)
    assert executor.ran == []
    (row,) = rows(store)
    assert (row.id, row.result, row.decision) == (out.audit_id, "pending", "auto")


async def test_blocked_action_comes_back_final(
    runtime: Runtime, executor: RecordingExecutor, store: AuditStore
) -> None:
    out = await runtime.authorize(Action("delete_user", "crm"))
    assert isinstance(out, Result) and out.status is ResultStatus.BLOCKED
    assert [r.result for r in rows(store)] == ["blocked"]


async def test_denied_approval_is_never_authorised(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    async with Runtime(
        executor=executor,
        policy=policy,
        approval_handler=CallbackApprovalHandler(lambda action, decision: False),
        audit=store,
    ) as rt:
        out = await rt.authorize(Action("bulk_update", "crm", params={"count": 500}))
    assert isinstance(out, Result) and out.status is ResultStatus.DENIED
    assert [r.result for r in rows(store)] == ["denied"]


async def test_report_from_another_store_finishes_the_record(
    runtime: Runtime, store: AuditStore, audit_url: str
) -> None:
    out = await runtime.authorize(Action("read_contacts", "crm"))
    assert isinstance(out, Authorization)
    async with AuditStore(audit_url) as other:  # another process/replica, same database
        await other.finish(out.audit_id, Result(out.action, ResultStatus.SUCCESS, attempts=1))
    (row,) = rows(store)
    assert row.result == "success"
    assert store.verify().ok
