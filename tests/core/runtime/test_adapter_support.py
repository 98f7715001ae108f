"""What the core gives framework adapters: a per-call executor, ``call_sync``, ``explain``.

A governed framework tool carries its own function; ``run_one(action, executor=...)`` runs it
inside the pipeline. These tests hold the properties adapters rely on: a stopped action never
reaches that function, what it did is what the audit says, and it gets the action the runtime
hands over.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from runtime_helpers import RecordingExecutor, rows

from aegis import Action, ApprovalDecision, Policy, Result, ResultStatus, Runtime
from aegis.adapters.base import CallableExecutor, call_sync
from aegis.errors import ExecutorError
from aegis.runtime.approval.handlers import CallbackApprovalHandler
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


def test_call_sync_runs_every_call_on_one_shared_loop() -> None:
    async def where() -> tuple[int, int]:
        return threading.get_ident(), id(asyncio.get_running_loop())

    first, second = call_sync(where), call_sync(where)
    assert first == second and first[0] != threading.get_ident()


async def test_call_sync_from_inside_a_running_loop() -> None:
    async def loop_id() -> int:
        await asyncio.sleep(0)
        return id(asyncio.get_running_loop())

    assert call_sync(loop_id) != id(asyncio.get_running_loop())


def test_call_sync_carries_the_callers_context_variables() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")

    async def read() -> str:
        return var.get()

    assert call_sync(read) == "caller"


def test_call_sync_refuses_to_wait_on_its_own_loop() -> None:
    async def nested() -> None:
        async def inner() -> None:
            return None

        call_sync(inner)

    with pytest.raises(RuntimeError, match="its own event loop"):
        call_sync(nested)


def test_many_threads_share_one_runtime_through_call_sync(policy: Policy, audit_url: str) -> None:
    """Sync frameworks run tools on pool threads; a lazily opened runtime must not hang."""
    runtime = Runtime(executor=RecordingExecutor(), policy=policy, audit=audit_url)
    executor = CallableExecutor(lambda a: threading.get_ident(), blocking=True)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda i: call_sync(
                    lambda: runtime.run_one(
                        Action("read", "crm", params={"i": i}), executor=executor
                    )
                ),
                range(16),
            )
        )
    call_sync(runtime.close)
    assert all(r.ok for r in results)
    store = AuditStore(audit_url)
    store.open_sync()
    try:
        assert sorted(r.params["i"] for r in store.query(limit=None)) == list(range(16))
    finally:
        store.close_sync()


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


async def test_toolbox_executor_dispatches_by_name_and_refuses_what_it_lacks() -> None:
    from types import SimpleNamespace

    from aegis.adapters.base import ToolboxExecutor
    from aegis.core.result import Result, ResultStatus

    class Box(ToolboxExecutor):
        framework = "Test"

        async def run_tool(self, tool: Any, action: Action) -> Result:
            return Result(action, ResultStatus.SUCCESS, data=tool.name)

    with pytest.raises(ValueError, match="two Test tools are named 'a'"):
        Box([SimpleNamespace(name="a"), SimpleNamespace(name="a")])
    box = Box([SimpleNamespace(name="a")])
    assert (await box.execute(Action("a", "x"))).data == "a"
    missing = await box.execute(Action("b", "x"))
    assert missing.status is ResultStatus.FAILED and "no Test tool named 'b' (have: a)" in (
        missing.error or ""
    )
