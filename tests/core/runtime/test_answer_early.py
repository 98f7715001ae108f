"""``recorded.answer_early``: a caller may pass the result on before the outcome is committed.

What must hold: the answer comes after the write-ahead row is committed and carries the result
``run_one`` returns; ``run_one`` itself still returns only after the outcome is committed; an
action that did not run (blocked, cancelled, raised) is never answered early; an action the
executor governs through a runtime of its own cannot answer in the caller's place; a failing
callback does not cost the outcome.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from runtime_helpers import RecordingExecutor, rows

from aegis import Action, Policy, Result, ResultStatus, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.runtime.audit import AuditStore
from aegis.runtime.recorded import answer_early


def _answering(seen: list[tuple[Result, list[str]]], store: AuditStore) -> Any:
    """A callback noting each result and the audit rows' states at the moment it is called."""

    def answer(result: Result) -> None:
        seen.append((result, [r.result for r in rows(store)]))

    return answer


async def test_the_answer_comes_between_the_write_ahead_row_and_the_outcome(
    runtime: Runtime, store: AuditStore
) -> None:
    seen: list[tuple[Result, list[str]]] = []
    token = answer_early.set(_answering(seen, store))
    try:
        result = await runtime.run_one(Action("read", "crm"))
    finally:
        answer_early.reset(token)
    [(answered, states)] = seen
    assert answered is result and result.ok
    assert states == ["pending"]  # written ahead, outcome not yet
    assert [r.result for r in rows(store)] == ["success"]  # committed before run_one returned


async def test_a_blocked_action_is_not_answered_early(
    runtime: Runtime, executor: RecordingExecutor, store: AuditStore
) -> None:
    seen: list[tuple[Result, list[str]]] = []
    token = answer_early.set(_answering(seen, store))
    try:
        result = await runtime.run_one(Action("delete", "crm"))
    finally:
        answer_early.reset(token)
    assert result.status is ResultStatus.BLOCKED and executor.ran == []
    assert seen == []
    assert [r.result for r in rows(store)] == ["blocked"]


async def test_an_executor_that_raises_is_answered_with_the_failure_it_is_recorded_with(
    policy: Policy, store: AuditStore
) -> None:
    """It ran (and failed): the caller hears so, and the trail says the same."""
    seen: list[tuple[Result, list[str]]] = []
    async with Runtime(
        executor=RecordingExecutor(raise_exc=RuntimeError("boom")), policy=policy, audit=store
    ) as rt:
        token = answer_early.set(_answering(seen, store))
        try:
            result = await rt.run_one(Action("read", "crm"))
        finally:
            answer_early.reset(token)
    [(answered, states)] = seen
    assert answered is result and result.status is ResultStatus.FAILED
    assert states == ["pending"]
    assert [r.result for r in rows(store)] == ["failed"]


class _Forever(BaseExecutor):
    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def execute(self, action: Action) -> Result:
        self.started.set()
        await asyncio.sleep(3600)
        raise AssertionError("not reached")


async def test_a_cancelled_action_is_not_answered_early(policy: Policy, store: AuditStore) -> None:
    seen: list[tuple[Result, list[str]]] = []
    executor = _Forever()
    async with Runtime(executor=executor, policy=policy, audit=store) as rt:
        token = answer_early.set(_answering(seen, store))
        try:
            task = asyncio.ensure_future(rt.run_one(Action("read", "crm")))
        finally:
            answer_early.reset(token)
        await executor.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen == []
    [row] = rows(store)
    assert row.result == "failed" and "cancelled" in (row.error or "")


class _Nested(BaseExecutor):
    """An executor that governs a sub-action through a runtime of its own."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner

    async def execute(self, action: Action) -> Result:
        sub = await self.inner.run_one(Action("read", "inner"))
        return Result(action, ResultStatus.SUCCESS, data={"sub": sub.audit_id})


async def test_an_action_run_by_the_executor_cannot_answer_in_the_callers_place(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    answered: list[Result] = []
    async with (
        Runtime(executor=executor, policy=policy, audit=store) as inner,
        Runtime(executor=_Nested(inner), policy=policy, audit=store) as outer,
    ):
        token = answer_early.set(answered.append)
        try:
            result = await outer.run_one(Action("read", "outer"))
        finally:
            answer_early.reset(token)
    assert [a.action.target for a in answered] == ["outer"]
    assert answered[0] is result
    assert answer_early.get() is None


async def test_a_failing_callback_does_not_cost_the_outcome(
    runtime: Runtime, store: AuditStore
) -> None:
    def broken(result: Result) -> None:
        raise ValueError("the client went away")

    token = answer_early.set(broken)
    try:
        result = await runtime.run_one(Action("read", "crm"))
    finally:
        answer_early.reset(token)
    assert result.ok
    assert [r.result for r in rows(store)] == ["success"]
