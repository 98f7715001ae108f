"""Cancelling the task running an action, at each await point of the pipeline.

Whatever point the cancellation hits, the action either did not run and its audit record says
so, or it ran and its record says what it did; no record is missing, and none is left
``pending`` (which ``verify()`` reports as "in flight, or the process died while it ran").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redteam_helpers import Recorder

from aegis import Action, Policy, Runtime, RuntimeHooks
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditStore


def _cancel_me(*_: Any) -> None:
    """A sync hook: asks for cancellation, delivered at the pipeline's next await."""
    task = asyncio.current_task()
    assert task is not None
    task.cancel()


async def _cancel_me_async(*_: Any) -> None:
    _cancel_me()
    await asyncio.sleep(0)


@pytest.fixture
async def busy_loop() -> AsyncIterator[None]:
    """Another live task, so audit writes are queued for group commit (the concurrent path)."""
    other = asyncio.ensure_future(asyncio.Event().wait())
    yield
    other.cancel()


async def _run_cancelled(policy: Policy, store: AuditStore, hooks: RuntimeHooks) -> Recorder:
    executor = Recorder()
    async with Runtime(
        executor=executor,
        policy=policy,
        audit=store,
        hooks=hooks,
        approval_handler=AutoApprovalHandler(),
    ) as rt:
        with pytest.raises(asyncio.CancelledError):
            await rt.run_one(Action("write", "crm"))
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()
        await asyncio.sleep(0.05)  # let a shielded audit write land
    return executor


async def _settled(store: AuditStore) -> list[Any]:
    for _ in range(200):  # the closing write may still be on its way from the writer thread
        records = store.query(limit=None)
        if records and all(r.result != "pending" for r in records):
            return records
        await asyncio.sleep(0.01)
    return store.query(limit=None)


@pytest.mark.parametrize("event", ["on_decision", "on_approval", "before_execute"])
async def test_cancelled_in_a_hook_before_running_is_recorded(
    approve_policy: Policy, store: AuditStore, event: str
) -> None:
    executor = await _run_cancelled(
        approve_policy, store, RuntimeHooks(**{event: _cancel_me_async})
    )
    assert executor.ran == []
    (rec,) = await _settled(store)
    assert rec.result in ("blocked", "denied")
    assert not rec.executed
    assert "cancelled" in (rec.reason or "")


async def test_cancelled_while_the_intent_is_being_written(
    auto_policy: Policy, store: AuditStore, busy_loop: None
) -> None:
    # The sync before_execute hook asks for cancellation; it lands on the first await after
    # it, which is the wait for the write-ahead record's commit.
    executor = await _run_cancelled(auto_policy, store, RuntimeHooks(before_execute=_cancel_me))
    assert executor.ran == []
    (rec,) = await _settled(store)
    assert rec.result != "pending", "an action that never ran is left looking in flight"
    assert not rec.executed
    assert "cancelled" in (rec.reason or "")
    report = store.verify()
    assert report.ok and report.pending == ()


async def test_cancelled_in_after_execute_records_what_the_action_did(
    auto_policy: Policy, store: AuditStore
) -> None:
    executor = await _run_cancelled(
        auto_policy, store, RuntimeHooks(after_execute=_cancel_me_async)
    )
    assert len(executor.ran) == 1 and len(executor.verified) == 1
    (rec,) = await _settled(store)
    assert rec.result == "success", "the action succeeded; the record must not say failed"
    assert rec.verified is True
