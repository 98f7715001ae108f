"""A write op whose code raises past ``Exception`` on the writer thread (a DECIDE callback: a
policy's condition, a plugin) must not end the thread: that op fails with ``AuditError``, the
ops batched with it are written, every caller hears back, later writes go on.

The runtime's own guard (``limit_state``) catches such an exception before it reaches the
writer; these tests bypass it and drive the writer directly, so the writer's last line of
defence is tested on its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from audit_helpers import Result, ResultStatus, action, decide

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.writer import DECIDE, Statements, WriteOp

BOUND = 60.0  # generous: only a hang comes near it


class Detonation(BaseException):
    pass


def _bomb(cur: Any, st: Statements) -> Any:
    cur.execute("SELECT 1")  # it had started using the transaction
    raise Detonation("in the decide callback")


def _blocked(i: int) -> Result:
    act = action(params={"i": i})
    return Result(act, ResultStatus.BLOCKED, decision=decide(act), reason="test")


@pytest.mark.parametrize("exc", [Detonation("x"), KeyboardInterrupt(), SystemExit(2)])
async def test_on_the_writer_thread_the_op_fails_and_its_batch_mates_are_written(
    store: AuditStore, exc: BaseException
) -> None:
    earlier = [await store.record(_blocked(i)) for i in range(3)]
    writer = store._writer
    assert writer is not None
    writer.inline = False  # every write goes through the writer thread

    def bomb(cur: Any, st: Statements) -> Any:
        raise exc

    # Hold the connection so the ops queue up and the bomb shares a batch with the others.
    with writer.connection_lock:
        mates = [asyncio.create_task(store.record(_blocked(10 + i))) for i in range(4)]
        boom = asyncio.create_task(writer.submit(WriteOp(DECIDE, bomb)))
        more = [asyncio.create_task(store.record(_blocked(20 + i))) for i in range(4)]
        await asyncio.sleep(0)  # every task has queued its op
    async with asyncio.timeout(BOUND):
        with pytest.raises(AuditError, match=type(exc).__name__):
            await boom
        ids = await asyncio.gather(*mates, *more)
        later = await store.record(_blocked(99))  # the thread is still there
    assert len(set(ids)) == 8
    assert store.count() == 3 + 8 + 1
    assert all(store.get(i) is not None for i in (*earlier, *ids, later))
    assert store.verify().ok


async def test_on_the_callers_thread_the_exception_is_the_callers(store: AuditStore) -> None:
    """Inline (no other task): the transaction is rolled back and the exception reaches the
    caller unchanged; nothing is written and the store goes on."""
    await store.record(_blocked(0))
    writer = store._writer
    assert writer is not None
    writer.inline_when = "idle"  # inline whenever the writer is idle, whatever else runs
    with pytest.raises(Detonation):
        await writer.submit(WriteOp(DECIDE, _bomb))
    await store.record(_blocked(1))
    assert store.count() == 2
    assert store.verify().ok
