from __future__ import annotations

import asyncio
from typing import Any

import pytest
from runtime_helpers import RecordingExecutor, rows

from aegis import Action, Policy, Result, ResultStatus, RetryPolicy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.runtime.approval.handlers import AutoApprovalHandler, CallbackApprovalHandler
from aegis.runtime.audit import AuditStore


async def test_quickstart_scenario(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    asked: list[str] = []

    def human(action: Action, decision: Any) -> bool:
        asked.append(action.type)
        return True

    async with Runtime(
        executor=executor,
        policy=policy,
        audit=store,
        approval_handler=CallbackApprovalHandler(human),
    ) as rt:
        plan = rt.plan(
            [
                Action("read", "crm", description="Fetch contacts"),
                Action("bulk_update", "crm", params={"count": 150}),
                Action("delete", "crm", description="Drop table"),
            ]
        )
        summary = plan.summary()
        results = await rt.execute(plan)
        one = await rt.run_one(Action("read", "crm"))
    assert "read_safe" in summary and "no_deletes" in summary and "1 blocked" in summary
    assert [r.status for r in results] == [
        ResultStatus.SUCCESS,
        ResultStatus.SUCCESS,
        ResultStatus.BLOCKED,
    ]
    assert asked == ["bulk_update"]
    assert [a.type for a in executor.ran] == ["read", "bulk_update", "read"]
    assert one.ok and one.audit_id is not None
    recs = rows(store)
    assert [(r.action_type, r.risk_level, r.decision, r.result) for r in recs] == [
        ("read", "LOW", "auto", "success"),
        ("bulk_update", "HIGH", "approved", "success"),
        ("delete", "CRITICAL", "blocked", "blocked"),
        ("read", "LOW", "auto", "success"),
    ]
    assert len({r.session_id for r in recs}) == 1


async def test_results_carry_decision_and_audit_id(runtime: Runtime) -> None:
    result = await runtime.run_one(Action("read", "crm"))
    assert result.decision is not None and result.decision.matched_rule == "read_safe"
    assert result.attempts == 1 and result.verified is True
    assert result.audit_id is not None and result.duration_ms is not None


async def test_dry_run_records_without_executing(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    async with Runtime(executor=executor, policy=policy, audit=store, dry_run=True) as rt:
        result = await rt.run_one(Action("read", "crm"))
        blocked = await rt.run_one(Action("delete", "crm"))
    assert executor.ran == []
    assert result.status is ResultStatus.SKIPPED and "would be auto" in (result.reason or "")
    assert blocked.status is ResultStatus.BLOCKED
    assert [r.result for r in rows(store)] == ["skipped", "blocked"]


async def test_executor_exception_is_a_recorded_failure(policy: Policy, store: AuditStore) -> None:
    executor = RecordingExecutor(raise_exc=ValueError("CRM said 500"))
    async with Runtime(executor=executor, policy=policy, audit=store) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.status is ResultStatus.FAILED and "CRM said 500" in (result.error or "")
    (rec,) = rows(store)
    assert rec.result == "failed" and "CRM said 500" in rec.error


class GarbageExecutor(BaseExecutor):
    async def execute(self, action: Action) -> Any:
        return {"ok": True}


async def test_executor_returning_garbage_fails(policy: Policy, store: AuditStore) -> None:
    async with Runtime(executor=GarbageExecutor(), policy=policy, audit=store) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.status is ResultStatus.FAILED and "not a Result" in (result.error or "")


class DoubtfulExecutor(RecordingExecutor):
    def __init__(self, verdict: Any) -> None:
        super().__init__()
        self.verdict = verdict

    async def verify(self, action: Action, result: Result) -> bool:
        if isinstance(self.verdict, Exception):
            raise self.verdict
        return self.verdict  # type: ignore[no-any-return]


@pytest.mark.parametrize("verdict", [False, None, "yes", RuntimeError("probe failed")])
async def test_verify_must_say_true(verdict: Any, policy: Policy, store: AuditStore) -> None:
    async with Runtime(executor=DoubtfulExecutor(verdict), policy=policy, audit=store) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.status is ResultStatus.FAILED and result.verified is False
    assert rows(store)[0].result == "failed"


class FlakyExecutor(BaseExecutor):
    def __init__(self, failures: int, exc: type[Exception] = ConnectionError) -> None:
        self.calls = 0
        self.failures = failures
        self.exc = exc

    async def execute(self, action: Action) -> Result:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"attempt {self.calls}")
        return Result(action, ResultStatus.SUCCESS)


async def test_retry_with_backoff_then_success(policy: Policy, store: AuditStore) -> None:
    ex = FlakyExecutor(failures=2)
    retry = RetryPolicy(max_attempts=3, base_delay=0.001)
    async with Runtime(executor=ex, policy=policy, audit=store, retry=retry) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.ok and result.attempts == 3 and ex.calls == 3
    (rec,) = rows(store)
    assert rec.result == "success" and rec.attempts == 3


async def test_retry_error_filter(policy: Policy, store: AuditStore) -> None:
    ex = FlakyExecutor(failures=2, exc=ValueError)
    retry = RetryPolicy(max_attempts=5, base_delay=0.001, retry_on=(ConnectionError,))
    async with Runtime(executor=ex, policy=policy, audit=store, retry=retry) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.status is ResultStatus.FAILED and ex.calls == 1


def test_backoff_is_exponential_and_capped() -> None:
    r = RetryPolicy(base_delay=0.5, multiplier=2, max_delay=3)
    assert [r.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3, 3]


async def test_retry_stops_when_policy_tightens(policy: Policy, store: AuditStore) -> None:
    lockdown = Policy.from_dict(
        {
            "version": "1",
            "rules": [
                {
                    "name": "lockdown",
                    "match": {"type": "*"},
                    "risk_level": "critical",
                    "approval": "block",
                }
            ],
        }
    )

    class TighteningExecutor(FlakyExecutor):
        async def execute(self, action: Action) -> Result:
            rt.update_policy(lockdown)
            return await super().execute(action)

    ex = TighteningExecutor(failures=5)
    rt = Runtime(
        executor=ex, policy=policy, audit=store, retry=RetryPolicy(max_attempts=5, base_delay=0.001)
    )
    result = await rt.run_one(Action("read", "crm"))
    assert ex.calls == 1 and result.status is ResultStatus.FAILED
    assert "retries stopped" in (result.reason or "")


class UndoExecutor(RecordingExecutor):
    """Fails on 'write' to target 'bad'; knows how to undo writes."""

    async def execute(self, action: Action) -> Result:
        self.ran.append(action)
        if action.target == "bad":
            return Result(action, ResultStatus.FAILED, error="bad target")
        return Result(action, ResultStatus.SUCCESS)

    async def rollback(self, action: Action, result: Result) -> Action | None:
        if action.type == "read_write" and result.ok:
            return Action("delete_write", action.target)  # blocked by the policy
        if action.type == "read_more" and result.ok:
            return Action("read_undo", action.target)
        return None


async def test_failure_skips_rest_and_rollback_is_governed(
    policy: Policy, store: AuditStore
) -> None:
    ex = UndoExecutor()
    async with Runtime(executor=ex, policy=policy, audit=store) as rt:
        results = await rt.execute(
            [
                Action("read_more", "a"),
                Action("read_write", "b"),
                Action("read_x", "bad"),
                Action("read_y", "never"),
            ]
        )
    assert [r.status for r in results] == [
        ResultStatus.SUCCESS,
        ResultStatus.SUCCESS,
        ResultStatus.FAILED,
        ResultStatus.SKIPPED,
    ]
    assert [a.type for a in ex.ran] == ["read_more", "read_write", "read_x", "read_undo"]
    # The compensating delete was evaluated and blocked, not trusted.
    assert results[1].rollback is not None
    assert results[1].rollback.status is ResultStatus.BLOCKED
    assert results[0].rollback is not None and results[0].rollback.ok
    recs = {r.id: r for r in rows(store)}
    undo = next(r for r in recs.values() if r.action_type == "read_undo")
    assert undo.parent_id == results[0].audit_id
    assert len(recs) == 6  # 4 steps + 2 rollback actions, one record each


async def test_concurrent_run_one_one_record_each(policy: Policy, store: AuditStore) -> None:
    ex = RecordingExecutor()

    async def agent(n: int) -> list[Result]:
        out = []
        for i in range(20):
            out.append(await rt.run_one(Action("read" if i % 3 else "delete", f"t{n}")))
        return out

    async with Runtime(
        executor=ex, policy=policy, audit=store, approval_handler=AutoApprovalHandler()
    ) as rt:
        batches = await asyncio.gather(*(agent(n) for n in range(30)))
    ids = [r.audit_id for batch in batches for r in batch]
    assert len(ids) == 600 and len(set(ids)) == 600
    assert len(rows(store)) == 600
    assert len(ex.ran) == sum(1 for b in batches for r in b if r.ok)
    assert store.verify().ok


async def test_runtime_without_context_manager(
    policy: Policy, executor: RecordingExecutor, audit_url: str
) -> None:
    rt = Runtime(executor=executor, policy=policy, audit=audit_url)
    result = await rt.run_one(Action("read", "crm"))
    assert result.ok
    await rt.close()


async def test_executor_and_handler_by_registered_name(policy: Policy, store: AuditStore) -> None:
    async with Runtime(
        executor=RecordingExecutor(), policy=policy, audit=store, approval_handler="auto"
    ) as rt:
        assert (await rt.run_one(Action("bulk_update", "crm", params={"count": 500}))).ok
