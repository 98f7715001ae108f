"""What the core gives framework adapters: a per-call executor, ``call_sync``, ``explain``.

A governed framework tool carries its own function; ``run_one(action, executor=...)`` runs it
inside the pipeline. These tests hold the properties adapters rely on: a stopped action never
reaches that function, what it did is what the audit says, and it gets the action the runtime
hands over.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from runtime_helpers import RecordingExecutor, rows

from aegis import Action, ApprovalDecision, Policy, Result, ResultStatus, Runtime
from aegis.adapters.base import CallableExecutor, call_sync
from aegis.errors import ExecutorError
from aegis.runtime.approval import CallbackApprovalHandler
from aegis.runtime.audit import AuditStore


async def test_per_call_executor_runs_instead_of_the_runtimes(
    runtime: Runtime, executor: RecordingExecutor, store: AuditStore
) -> None:
    seen: list[Action] = []
    result = await runtime.run_one(
        Action("read", "crm", params={"q": 1}),
        executor=CallableExecutor(lambda a: seen.append(a) or {"rows": 3}),
    )
    assert result.ok and result.data == {"rows": 3}
    assert executor.ran == [] and [a.params for a in seen] == [{"q": 1}]
    (rec,) = rows(store)
    assert rec.result == "success" and rec.action_type == "read"


async def test_per_call_executor_never_runs_a_blocked_action(
    runtime: Runtime, store: AuditStore
) -> None:
    seen: list[Action] = []
    result = await runtime.run_one(Action("delete", "crm"), executor=CallableExecutor(seen.append))
    assert result.status is ResultStatus.BLOCKED and seen == []
    assert rows(store)[0].result == "blocked"


async def test_per_call_executor_never_runs_a_denied_action(
    policy: Policy, store: AuditStore
) -> None:
    seen: list[Action] = []
    handler = CallbackApprovalHandler(lambda a, d: ApprovalDecision.deny("ann", "not today"))
    async with Runtime(
        executor=RecordingExecutor(), policy=policy, approval_handler=handler, audit=store
    ) as rt:
        result = await rt.run_one(
            Action("bulk_update", "crm", params={"count": 500}),
            executor=CallableExecutor(seen.append),
        )
    assert result.status is ResultStatus.DENIED and seen == []
    assert "not today" in result.explain()
    assert rows(store)[0].result == "denied"


async def test_raising_function_is_failed_and_audited(runtime: Runtime, store: AuditStore) -> None:
    def boom(action: Action) -> None:
        raise ValueError("crm is down")

    result = await runtime.run_one(Action("read", "crm"), executor=CallableExecutor(boom))
    assert result.status is ResultStatus.FAILED and result.executed
    (rec,) = rows(store)
    assert rec.result == "failed" and "crm is down" in (rec.error or "")


async def test_async_function_and_returned_result(runtime: Runtime) -> None:
    async def fn(action: Action) -> Result:
        await asyncio.sleep(0)
        return Result(action, "failed", error="upstream said no")

    result = await runtime.run_one(Action("read", "crm"), executor=CallableExecutor(fn))
    assert result.status is ResultStatus.FAILED and result.error == "upstream said no"


async def test_per_call_executor_must_be_an_executor(runtime: Runtime, store: AuditStore) -> None:
    with pytest.raises(ExecutorError):
        await runtime.run_one(Action("read", "crm"), executor=lambda a: None)  # type: ignore[arg-type]
    assert rows(store) == []


def test_call_sync_without_a_running_loop_stays_on_this_thread() -> None:
    async def where() -> int:
        return threading.get_ident()

    assert call_sync(where) == threading.get_ident()


async def test_call_sync_inside_a_running_loop_uses_a_helper_thread() -> None:
    async def where() -> int:
        await asyncio.sleep(0)
        return threading.get_ident()

    assert call_sync(where) != threading.get_ident()


async def test_call_sync_propagates_errors() -> None:
    async def fail() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        call_sync(fail)


def test_explain_names_the_outcome_and_the_reason() -> None:
    action = Action("delete", "crm")
    assert Result(action, "success").explain() == "Succeeded: delete on crm."
    blocked = Result(action, "blocked", reason="blocked by rule no_deletes").explain()
    assert (
        blocked
        == "Blocked by policy: delete on crm was not run. Reason: blocked by rule no_deletes"
    )
    assert Result(action, "denied", reason="denied: no").explain().startswith("Not approved:")
    assert "KeyError: 'id'" in Result(action, "failed", error=KeyError("id")).explain()
    assert Result(action, "skipped").explain().endswith("Reason: skipped")
