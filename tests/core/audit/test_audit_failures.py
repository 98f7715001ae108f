"""A store that cannot write says so with AuditError (so the runtime does not run the action)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from audit_helpers import Result, ResultStatus, action, decide, raw, run_action

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore


async def test_closed_store_refuses_writes(db_url: str) -> None:
    store = AuditStore(db_url)
    act = action()
    with pytest.raises(AuditError, match="not open"):
        await store.begin(act, decide(act), None)
    await store.open()
    await store.close()
    with pytest.raises(AuditError):
        await store.begin(act, decide(act), None)
    with pytest.raises(AuditError):
        await store.record(Result(act, ResultStatus.BLOCKED))


async def test_open_and_close_are_idempotent(db_url: str) -> None:
    store = AuditStore(db_url)
    await store.open()
    await store.open()
    audit_id = await run_action(store)
    await store.close()
    await store.close()
    assert store.get(audit_id) is not None  # reads still work on a closed store


async def test_read_only_database_fails_closed(db_url: str, tmp_path: Path) -> None:
    async with AuditStore(db_url) as store:
        await run_action(store)
    ro_url = f"sqlite:///file:{tmp_path / 'audit.db'}?mode=ro&uri=true"
    async with AuditStore(ro_url) as ro:
        act = action()
        with pytest.raises(AuditError, match="could not write"):
            await ro.begin(act, decide(act), None)
        with pytest.raises(AuditError):
            await ro.record(Result(act, ResultStatus.BLOCKED, decision=decide(act)))
        assert ro.count() == 1  # the trail is readable, and untouched


async def test_dropped_table_fails_closed(store: AuditStore, db_url: str) -> None:
    await run_action(store)
    raw(db_url, "DROP TABLE aegis_audit")
    act = action()
    with pytest.raises(AuditError):
        await store.begin(act, decide(act), None)


async def test_missing_chain_head_fails_closed(store: AuditStore, db_url: str) -> None:
    raw(db_url, "DELETE FROM aegis_audit_head")
    act = action()
    with pytest.raises(AuditError, match="chain head"):
        await store.begin(act, decide(act), None)


async def test_locked_database_fails_closed_after_busy_timeout(db_url: str, tmp_path: Path) -> None:
    blocker = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    async with AuditStore(db_url, busy_timeout=0.05) as store:
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            act = action()
            with pytest.raises(AuditError, match="locked"):
                await store.begin(act, decide(act), None)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await run_action(store) == 1  # and recovers once the lock is gone


async def test_failed_write_in_a_batch_does_not_fail_the_others(store: AuditStore) -> None:
    """One bad finish (unknown id) among concurrent good writes: only it fails, even when the
    writer put them in one transaction (a failed batch is retried op by op)."""
    import asyncio

    act = action()
    ids = [await store.begin(act, decide(act), None) for _ in range(5)]

    async def finish(audit_id: int) -> None:
        await store.finish(audit_id, Result(act, ResultStatus.SUCCESS, attempts=1))

    outcomes = await asyncio.gather(*(finish(i) for i in [*ids, 777]), return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 5 + ["AuditError"]
    assert store.count(result="success") == 5
    assert store.verify().ok


def test_reading_a_missing_trail_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no audit trail"):
        AuditStore(f"sqlite:///{tmp_path / 'nothing.db'}").query()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="durability"):
        AuditStore("sqlite://", durability="fast")  # type: ignore[arg-type]
    with pytest.raises(AuditError, match="not a database URL"):
        AuditStore("::nonsense::").query()


@pytest.mark.parametrize(
    "url", ["mysql+aegisnosuchdriver://u@127.0.0.1/x", "mysql+pymysql://u@127.0.0.1:1/x"]
)
async def test_unusable_database_url_is_an_audit_error(url: str) -> None:
    """No such dialect, or a driver that is not installed (or a server that is not there)."""
    from aegis.errors import AuditError
    from aegis.runtime.audit import AuditStore

    with pytest.raises(AuditError, match="cannot open the audit store"):
        await AuditStore(url).open()
