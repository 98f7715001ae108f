"""Every path that decides whether an action runs, broken on purpose.

Each test asserts on ``executor.ran`` (what really happened), and on the audit record that
explains why; a status check alone could pass while the action ran.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import attrs
import pytest
from runtime_helpers import RecordingExecutor, rows

from aegis import Action, ApprovalDecision, Policy, RetryPolicy, Runtime, RuntimeHooks
from aegis.core.decision import PolicyDecision
from aegis.core.plan import ExecutionPlan
from aegis.core.result import ResultStatus
from aegis.core.risk import Approval, RiskLevel
from aegis.errors import AuditError
from aegis.runtime.approval.handlers import (
    ApprovalHandler,
    CallbackApprovalHandler,
    CLIApprovalHandler,
)
from aegis.runtime.audit import AuditStore

BULK = Action("bulk_update", "crm", params={"count": 150})


def make(policy: Policy, executor: RecordingExecutor, store: AuditStore, **kw: Any) -> Runtime:
    return Runtime(executor=executor, policy=policy, audit=store, **kw)


async def test_blocked_rule_never_runs(
    runtime: Runtime, executor: RecordingExecutor, store: AuditStore
) -> None:
    result = await runtime.run_one(Action("DELETE_user", "crm"))  # case-insensitive glob
    assert executor.ran == []
    assert result.status is ResultStatus.BLOCKED
    (rec,) = rows(store)
    assert rec.result == "blocked" and rec.matched_rule == "no_deletes"


class ExplodingPolicy:
    def evaluate(self, action: Action) -> PolicyDecision:
        raise RuntimeError("policy backend down")


async def test_policy_that_raises_blocks(executor: RecordingExecutor, store: AuditStore) -> None:
    async with Runtime(executor=executor, policy=ExplodingPolicy(), audit=store) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert executor.ran == []
    assert result.status is ResultStatus.BLOCKED
    assert "policy backend down" in (result.reason or "")
    (rec,) = rows(store)
    assert rec.result == "blocked" and "policy backend down" in rec.reason


class WrongTypePolicy:
    def evaluate(self, action: Action) -> Any:
        return {"approval": "auto"}


async def test_policy_returning_garbage_blocks(
    executor: RecordingExecutor, store: AuditStore
) -> None:
    async with Runtime(executor=executor, policy=WrongTypePolicy(), audit=store) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED


@pytest.mark.parametrize("answer", ["yes", 1, object(), None, [True], "True", 1.0])
async def test_only_true_or_explicit_approval_approves(
    answer: Any, policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    handler = CallbackApprovalHandler(lambda a, d: answer)
    async with make(policy, executor, store, approval_handler=handler) as rt:
        result = await rt.run_one(BULK)
    assert executor.ran == []
    assert result.status is ResultStatus.DENIED
    (rec,) = rows(store)
    assert rec.result == "denied"


async def test_explicit_approval_records_identity(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    handler = CallbackApprovalHandler(
        lambda a, d: ApprovalDecision.approve(approver="alice@example.com", reason="ticket 42")
    )
    async with make(policy, executor, store, approval_handler=handler) as rt:
        result = await rt.run_one(BULK)
    assert len(executor.ran) == 1 and result.ok
    (rec,) = rows(store)
    assert rec.approver == "alice@example.com" and rec.approval_reason == "ticket 42"
    assert rec.result == "success" and rec.decision == "approved"


async def test_async_true_approves(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    async def approve(a: Action, d: PolicyDecision) -> bool:
        return True

    async with make(
        policy, executor, store, approval_handler=CallbackApprovalHandler(approve)
    ) as rt:
        assert (await rt.run_one(BULK)).ok
    assert len(executor.ran) == 1


async def test_handler_exception_denies(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    def boom(a: Action, d: PolicyDecision) -> bool:
        raise ConnectionError("slack unreachable")

    async with make(policy, executor, store, approval_handler=CallbackApprovalHandler(boom)) as rt:
        result = await rt.run_one(BULK)
    assert executor.ran == []
    assert result.status is ResultStatus.DENIED and "slack unreachable" in (result.reason or "")
    (rec,) = rows(store)
    assert rec.result == "denied" and "slack unreachable" in rec.reason


async def test_handler_timeout_denies(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    async def never(a: Action, d: PolicyDecision) -> bool:
        await asyncio.sleep(3600)
        return True

    handler = CallbackApprovalHandler(never)
    async with make(policy, executor, store, approval_handler=handler, approval_timeout=0.05) as rt:
        result = await rt.run_one(BULK)
    assert executor.ran == []
    assert result.status is ResultStatus.DENIED
    assert result.approval is not None and result.approval.timed_out
    (rec,) = rows(store)
    assert rec.decision == "timeout" and rec.result == "denied"


async def test_handler_timeout_attribute_overrides_runtime(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    class Slow(ApprovalHandler):
        timeout = 0.05

        async def request_approval(self, action: Action, decision: PolicyDecision) -> bool:
            await asyncio.sleep(3600)
            return True

    async with make(policy, executor, store, approval_handler=Slow(), approval_timeout=None) as rt:
        result = await rt.run_one(BULK)
    assert executor.ran == [] and result.status is ResultStatus.DENIED


async def test_cli_handler_without_tty_denies(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    handler = CLIApprovalHandler(input_stream=io.StringIO("y\n"), output_stream=io.StringIO())
    async with make(policy, executor, store, approval_handler=handler) as rt:
        result = await rt.run_one(BULK)
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    assert "TTY" in (result.reason or "")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("typed", "runs"),
    [("y\n", True), ("yes\n", True), ("n\n", False), ("\n", False), ("", False), ("yess\n", False)],
)
async def test_cli_handler_answers(
    typed: str, runs: bool, policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    out = io.StringIO()
    handler = CLIApprovalHandler(input_stream=FakeTTY(typed), output_stream=out)
    async with make(policy, executor, store, approval_handler=handler) as rt:
        result = await rt.run_one(BULK)
    assert (len(executor.ran) == 1) is runs
    assert result.ok is runs
    assert "bulk_update" in out.getvalue()


@pytest.mark.parametrize("event", ["on_decision", "on_approval", "before_execute"])
async def test_hook_that_raises_before_execution_stops_the_action(
    event: str, policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    def boom(*args: Any) -> None:
        raise RuntimeError(f"{event} exploded")

    hooks = RuntimeHooks(**{event: boom})
    handler = CallbackApprovalHandler(lambda a, d: True)
    async with make(policy, executor, store, hooks=hooks, approval_handler=handler) as rt:
        result = await rt.run_one(BULK)
    assert executor.ran == []
    assert result.status in (ResultStatus.BLOCKED, ResultStatus.DENIED)
    (rec,) = rows(store)
    assert f"{event} exploded" in rec.reason


async def test_after_execute_failure_is_recorded_not_hidden(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    async def boom(action: Action, result: Any) -> None:
        raise RuntimeError("metrics down")

    async with make(policy, executor, store, hooks=RuntimeHooks(after_execute=boom)) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert len(executor.ran) == 1 and result.ok
    (rec,) = rows(store)
    assert rec.result == "success" and "metrics down" in rec.reason


async def test_plugin_before_execute_hook_can_stop(
    aegis_plugin: Any, runtime: Runtime, executor: RecordingExecutor, store: AuditStore
) -> None:
    from aegis import hookimpl

    class Guard:
        @hookimpl
        async def aegis_before_execute(self, action: Action, decision: PolicyDecision) -> None:
            raise PermissionError("kill switch engaged")

    aegis_plugin(Guard(), name="kill-switch")
    result = await runtime.run_one(Action("read", "crm"))
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED
    assert "kill switch engaged" in (rows(store)[0].reason or "")


async def test_store_that_cannot_write_stops_the_action(
    policy: Policy, executor: RecordingExecutor, tmp_path: Any
) -> None:
    store = AuditStore(f"sqlite:///{tmp_path / 'a.db'}")
    await store.open()
    # Break the store underneath it: the table it writes to is gone.
    import sqlite3

    con = sqlite3.connect(tmp_path / "a.db")
    for (name,) in con.execute("select name from sqlite_master where type='table'").fetchall():
        con.execute(f'drop table "{name}"')
    con.commit()
    con.close()
    rt = Runtime(
        executor=executor,
        policy=policy,
        audit=store,
        approval_handler=CallbackApprovalHandler(lambda a, d: True),
    )
    with pytest.raises(AuditError):
        await rt.run_one(Action("read", "crm"))
    assert executor.ran == []
    await store.close()


async def test_forged_plan_cannot_run_a_blocked_action(
    runtime: Runtime, executor: RecordingExecutor, store: AuditStore
) -> None:
    plan = runtime.plan([Action("delete", "crm")])
    forged_step = attrs.evolve(
        plan.steps[0],
        decision=attrs.evolve(
            plan.steps[0].decision,
            approval=Approval.AUTO,
            risk_level=RiskLevel.LOW,
            matched_rule="read_safe",
        ),
    )
    forged = ExecutionPlan((forged_step,), plan.policy_fingerprint)
    (result,) = await runtime.execute(forged)
    assert executor.ran == []
    assert result.status is ResultStatus.BLOCKED
    assert "plan said auto" in (rows(store)[0].reason or "")


async def test_stale_plan_uses_the_current_policy(
    runtime: Runtime, executor: RecordingExecutor
) -> None:
    plan = runtime.plan([Action("read", "crm")])
    assert plan.steps[0].decision.approval is Approval.AUTO
    runtime.update_policy(
        Policy.from_dict(
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
    )
    (result,) = await runtime.execute(plan)
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED


async def test_cancelled_during_approval_is_recorded_and_not_run(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    started = asyncio.Event()

    async def wait(a: Action, d: PolicyDecision) -> bool:
        started.set()
        await asyncio.sleep(3600)
        return True

    async with make(policy, executor, store, approval_handler=CallbackApprovalHandler(wait)) as rt:
        task = asyncio.create_task(rt.run_one(BULK))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert executor.ran == []
    (rec,) = rows(store)
    assert rec.result == "denied" and "cancelled" in rec.reason


async def test_agent_cannot_claim_another_identity(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    strict = Policy.from_dict(
        {
            "version": "1",
            "defaults": {"risk_level": "high", "approval": "block"},
            "rules": [
                {
                    "name": "admin_reads",
                    "match": {"type": "read*", "agent": "admin"},
                    "risk_level": "low",
                    "approval": "auto",
                }
            ],
        }
    )
    async with Runtime(executor=executor, policy=strict, audit=store, agent_id="intern") as rt:
        result = await rt.run_one(Action("read", "crm", agent_id="admin"))
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED
    assert rows(store)[0].agent_id == "intern"


async def test_plugin_registered_straight_on_pluggy_is_seen_at_once(
    runtime: Runtime, executor: RecordingExecutor
) -> None:
    from aegis import hookimpl, plugins

    assert (await runtime.run_one(Action("read", "crm"))).ok  # the runtime is warm

    class KillSwitch:
        @hookimpl
        def aegis_before_execute(self, action: Action, decision: PolicyDecision) -> None:
            raise PermissionError("stop everything")

    pm = plugins.get_plugin_manager()
    pm.register(KillSwitch(), name="raw-kill-switch")
    try:
        result = await runtime.run_one(Action("read", "crm"))
    finally:
        pm.unregister(name="raw-kill-switch")
    assert len(executor.ran) == 1 and result.status is ResultStatus.BLOCKED


async def test_internal_error_after_execution_still_closes_the_record(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    class BrokenRetry(RetryPolicy):
        def retries_exception(self, exc: BaseException) -> bool:
            raise AssertionError("bug in a retry filter")

    executor.raise_exc = ConnectionError("flaky")
    retry = BrokenRetry(max_attempts=3, base_delay=0)
    async with make(policy, executor, store, retry=retry) as rt:
        with pytest.raises(AssertionError):
            await rt.run_one(Action("read", "crm"))
    assert len(executor.ran) == 1
    (rec,) = rows(store)
    assert rec.result == "failed" and "bug in a retry filter" in rec.error
