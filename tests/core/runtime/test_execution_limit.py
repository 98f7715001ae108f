"""The execution time limit (runtime/execution.py ``_call_executor``).

What must hold: the limit returns on time whatever the executor does with the cancellation;
a cleanup the executor awaits still runs; the caller's own cancellation is never swallowed;
an executor's own TimeoutError is its failure, not our limit.

The executor runs in a task of its own. Driving it inside the caller's task instead (no task,
no loop pass per action: about 13 us of CPU less in b1) was tried and rejected: anyio cancel
scopes inside httpx then belong to the caller's task, and after a timeout one of them
cancelled the *caller* (test_an_anyio_executor_timing_out_leaves_the_caller_alone).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from runtime_helpers import rows

from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus
from aegis.runtime.audit import AuditStore

AUTO = Policy.from_yaml_string('version: "1"\ndefaults: {risk_level: low, approval: auto}\n')


class CleansUp(BaseExecutor):
    """Awaits (cleanup) after being cancelled, then lets the cancellation through."""

    def __init__(self) -> None:
        self.cleaned = asyncio.Event()

    async def execute(self, action: Action) -> Any:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)
            self.cleaned.set()
            raise
        return Result(action, ResultStatus.SUCCESS)


async def test_a_cleanup_awaited_after_the_limit_still_runs(store: AuditStore) -> None:
    executor = CleansUp()
    async with Runtime(executor=executor, policy=AUTO, audit=store, execution_timeout=0.1) as rt:
        result = await asyncio.wait_for(rt.run_one(Action("read", "crm")), 30)
        assert result.status is ResultStatus.FAILED
        assert "timed out" in (result.error or "")
        await asyncio.wait_for(executor.cleaned.wait(), 30)
    (rec,) = rows(store)
    assert rec.result == "failed"


class OwnTimeout(BaseExecutor):
    async def execute(self, action: Action) -> Any:
        await asyncio.sleep(0)
        raise TimeoutError("upstream gateway timed out")


async def test_the_executors_own_timeout_is_its_failure_not_our_limit(store: AuditStore) -> None:
    async with Runtime(executor=OwnTimeout(), policy=AUTO, audit=store) as rt:
        result = await rt.run_one(Action("read", "crm"))
    assert result.status is ResultStatus.FAILED
    assert "upstream gateway timed out" in (result.error or "")
    assert "within" not in (result.error or "")  # not reported as the runtime's limit


class Sleeps(BaseExecutor):
    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def execute(self, action: Action) -> Any:
        self.started.set()
        await asyncio.sleep(3600)
        return Result(action, ResultStatus.SUCCESS)


async def test_the_callers_cancellation_passes_through(store: AuditStore) -> None:
    executor = Sleeps()
    async with Runtime(executor=executor, policy=AUTO, audit=store) as rt:
        task = asyncio.ensure_future(rt.run_one(Action("read", "crm")))
        await asyncio.wait_for(executor.started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (rec,) = rows(store)
    assert rec.result == "failed" and "cancelled" in (rec.error or "")


class Interrupts(BaseExecutor):
    async def execute(self, action: Action) -> Any:
        await asyncio.sleep(0)
        raise KeyboardInterrupt


async def test_an_interrupt_after_a_suspension_still_completes_the_record(
    store: AuditStore,
) -> None:
    async with Runtime(executor=Interrupts(), policy=AUTO, audit=store) as rt:
        with pytest.raises(KeyboardInterrupt):
            await rt.run_one(Action("read", "crm"))
    (rec,) = rows(store)
    assert rec.result == "failed" and "KeyboardInterrupt" in (rec.error or "")


async def test_a_limit_never_fires_early(store: AuditStore) -> None:
    loop = asyncio.get_running_loop()
    async with Runtime(executor=Sleeps(), policy=AUTO, audit=store, execution_timeout=0.3) as rt:
        started = loop.time()
        result = await asyncio.wait_for(rt.run_one(Action("read", "crm")), 30)
        waited = loop.time() - started
    assert "timed out" in (result.error or "")
    assert waited >= 0.3


async def test_one_sweep_serves_every_limit_and_stops_when_idle() -> None:
    from aegis.runtime.execution import _expiry_of

    loop = asyncio.get_running_loop()
    expiry = _expiry_of(loop)
    assert _expiry_of(loop) is expiry  # one per event loop
    slow, fast = loop.create_future(), loop.create_future()
    expiry.add(slow, 300.0)
    expiry.add(fast, 0.05)  # a shorter limit makes the sweep finer, at once
    await asyncio.wait_for(fast, 30)
    assert not slow.done()  # woken by its own deadline only
    expiry.discard(slow)
    await asyncio.sleep(0.05)
    assert expiry._timer is None  # nothing in flight: no timer left running


def test_a_finished_event_loop_is_not_kept_alive_by_its_sweep() -> None:
    """In a fresh interpreter (other tests' leftovers hold loops of their own): after one
    limited action, a closed loop is collected, so its sweep's entry goes with it."""
    script = """
import asyncio, gc, weakref
from aegis import Action, Policy, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.core.result import Result, ResultStatus
from aegis.runtime.execution import _EXPIRY

class Immediate(BaseExecutor):
    async def execute(self, action):
        return Result(action, ResultStatus.SUCCESS)

async def one():
    policy = Policy.from_yaml_string('version: "1"\\ndefaults: {approval: auto}\\n')
    async with Runtime(executor=Immediate(), policy=policy, audit="sqlite://") as rt:
        await rt.run_one(Action("read", "crm"))

loop = asyncio.new_event_loop()
loop.run_until_complete(one())
assert loop in _EXPIRY
loop.close()
ref = weakref.ref(loop)
del loop
gc.collect()
print("collected" if ref() is None else "kept alive")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "collected"
