"""Many concurrent writers: exactly one row per action, one unforked chain."""

from __future__ import annotations

import asyncio

from audit_helpers import Result, ResultStatus, action, decide, run_action, spawn_writers

from aegis.runtime.audit import AuditStore


async def test_many_tasks_one_row_each_chain_intact(store: AuditStore) -> None:
    async def agent(n: int) -> list[int]:
        ids = []
        for i in range(20):
            act = action(session_id=f"task{n}", params={"i": i})
            if i % 5 == 4:  # some outcomes where nothing ran, interleaved with executions
                ids.append(
                    await store.record(
                        Result(act, ResultStatus.BLOCKED, decision=decide(act), reason="x")
                    )
                )
            else:
                ids.append(await run_action(store, act))
        return ids

    per_task = await asyncio.gather(*(agent(n) for n in range(50)))
    all_ids = [i for ids in per_task for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 1000
    assert store.count() == 1000
    assert store.count(result="pending") == 0
    for n, ids in enumerate(per_task):  # each task's rows are its own
        rows = store.query(session=f"task{n}", limit=None)
        assert sorted(r.id for r in rows) == sorted(ids)
        assert [r.params["i"] for r in sorted(rows, key=lambda r: r.id)] == list(range(20))
    report = store.verify()
    assert report.ok, report.summary()
    assert report.checked == 1000


async def test_two_stores_in_one_process_share_one_chain(db_url: str) -> None:
    async with AuditStore(db_url) as a, AuditStore(db_url) as b:
        await asyncio.gather(
            *(run_action(s) for _ in range(50) for s in (a, b)),
        )
        assert a.count() == 100
        assert a.verify().ok


def test_several_processes_never_fork_the_chain(db_url: str) -> None:
    spawn_writers(db_url, processes=3, actions=60)
    store = AuditStore(db_url)
    assert store.count() == 180
    assert {s.total for s in store.stats()} == {180}
    for i in range(3):
        assert store.count(session=f"proc{i}") == 60
    report = store.verify()
    assert report.ok, report.summary()
    assert report.last_id == 180


async def test_query_while_another_process_writes(db_url: str) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
        writer = asyncio.create_task(asyncio.to_thread(spawn_writers, db_url, 1, 200))
        while not writer.done():
            assert store.count() >= 1
            assert store.verify().ok  # a consistent snapshot, never a half-written chain
            await asyncio.sleep(0.01)
        await writer
        assert store.count() == 201


async def test_inline_when_idle_writes_on_the_callers_thread_and_keeps_the_chain(
    db_url: str,
) -> None:
    """``inline_when="idle"`` (a stdio proxy): no thread hop while the writer is idle, even
    with helper tasks in the loop; concurrent writers still queue, and the chain holds."""
    import threading

    store = AuditStore(db_url)
    store.inline_when = "idle"
    await store.open()
    try:
        writer = store._writer
        assert writer is not None
        threads: list[str] = []
        original = writer._write

        def spy(ops: list[object]) -> None:
            threads.append(threading.current_thread().name)
            original(ops)  # type: ignore[arg-type]

        writer._write = spy  # type: ignore[method-assign]
        helper = asyncio.create_task(asyncio.sleep(30))  # the loop is not ours alone
        try:
            await run_action(store, action(params={"i": -1}))
            assert threads and set(threads) == {threading.current_thread().name}
            await asyncio.gather(*(run_action(store, action(params={"i": i})) for i in range(200)))
        finally:
            helper.cancel()
        assert store.count() == 201 and store.count(result="pending") == 0
        report = store.verify()
        assert report.ok, report.summary()
    finally:
        await store.close()
