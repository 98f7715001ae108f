"""On a database server (PostgreSQL), the snapshot a stateful policy reads before deciding is
read on a worker thread, not on the event loop: a slow or blocked read (network, a lock) stalls
that one action, never every other task of the process. The decision is the same one: the
final decision is still made inside the write transaction.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from limits_helpers import CountingExecutor, pg_connect, policy, saw_a_lock_wait

from aegis import Action, Runtime
from aegis.core.result import ResultStatus
from aegis.runtime.audit import AuditStore

RATE = """
  - name: delete-rate
    match: {type: "delete*"}
    conditions: {rate_limit: {max: 2, per: 1h}}
    approval: block
"""

#: Generous bounds: only a blocked event loop (or a hang) comes near them.
BOUND = 30.0


@pytest.mark.postgres
async def test_a_blocked_snapshot_read_leaves_the_event_loop_running(pg_url: str) -> None:
    executor = CountingExecutor()
    act = Action("delete_contact", "crm", agent_id="a")
    async with Runtime(
        executor=executor, policy=policy(RATE), audit=pg_url, approval_handler="auto"
    ) as rt:
        assert (await rt.run_one(act)).status is ResultStatus.SUCCESS  # tables exist, 1 used

        # Another session locks the usage table: every read of it waits.
        locker = pg_connect(pg_url)
        locker.execute("LOCK TABLE aegis_limit_usage IN ACCESS EXCLUSIVE MODE")
        # If the loop is blocked, this test's own code cannot release the lock: a timer does,
        # so the failure is an assertion below, not a hung suite.
        safety = threading.Timer(BOUND, locker.rollback)
        safety.start()
        monitor = pg_connect(pg_url)
        monitor.autocommit = True
        try:
            task = asyncio.create_task(rt.run_one(act))
            seen_waiting = await saw_a_lock_wait(task, monitor, BOUND)
            locker.rollback()
            async with asyncio.timeout(BOUND):
                second = await task
        finally:
            safety.cancel()
            locker.close()
            monitor.close()
        assert seen_waiting, "the event loop did not run while the snapshot read was blocked"
        assert second.status is ResultStatus.SUCCESS
        third = await rt.run_one(act)
    assert third.status is ResultStatus.BLOCKED  # max 2: the limit is as exact as before
    assert len(executor.ran) == 2
    async with AuditStore(pg_url) as store:
        assert store.count(result="success") == 2
        assert store.count(result="blocked") == 1
        assert store.verify().ok
