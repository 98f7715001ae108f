"""Which commits wait for the disk: watched through SQLite's own statement trace, not a clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from audit_helpers import Result, ResultStatus, action, decide

from aegis.runtime.audit import AuditStore


def _trace(store: AuditStore) -> list[str]:
    """Every statement the writer connection runs from now on."""
    seen: list[str] = []
    writer: Any = store._writer
    writer.inline = False  # exercise the writer thread, as under concurrency
    writer._conn.driver_connection.set_trace_callback(seen.append)
    return seen


def _sync_of_each_commit(statements: list[str]) -> list[tuple[str, str]]:
    """(synchronous mode in force, kind of transaction) for each COMMIT."""
    mode, kind, out = "?", "intent", []
    for sql in statements:
        if sql.startswith("PRAGMA synchronous="):
            mode = sql.split("=", 1)[1]
        elif sql.startswith("BEGIN"):
            kind = "intent"
        elif sql.startswith("UPDATE aegis_audit SET") or (
            sql.startswith("INSERT INTO aegis_audit (") and "'pending'" not in sql
        ):
            kind = "final"
        elif sql == "COMMIT":
            out.append((mode, kind))
    return out


async def test_full_durability_fsyncs_finals_and_defers_intents(db_url: str) -> None:
    async with AuditStore(db_url, durability="full") as store:
        seen = _trace(store)
        act = action()
        audit_id = await store.begin(act, decide(act), None)
        await store.finish(audit_id, Result(act, ResultStatus.SUCCESS, attempts=1))
        await store.record(Result(act, ResultStatus.BLOCKED, decision=decide(act)))
    assert _sync_of_each_commit(seen) == [
        ("NORMAL", "intent"),
        ("FULL", "final"),
        ("FULL", "final"),
    ]


async def test_normal_durability_never_waits_for_the_disk(db_url: str) -> None:
    async with AuditStore(db_url, durability="normal") as store:
        seen = _trace(store)
        act = action()
        audit_id = await store.begin(act, decide(act), None)
        await store.finish(audit_id, Result(act, ResultStatus.SUCCESS, attempts=1))
    modes = {mode for mode, _ in _sync_of_each_commit(seen)}
    assert modes == {"NORMAL"}


async def test_sqlite_file_is_in_wal_mode_with_busy_timeout(db_url: str) -> None:
    async with AuditStore(db_url, busy_timeout=3.5) as store:
        engine: Any = store.engine
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 3500


@pytest.mark.parametrize("durability", ["full", "normal"])
async def test_concurrent_writes_share_transactions(db_url: str, durability: str) -> None:
    """Group commit: 200 concurrent actions need far fewer than 400 commits."""
    async with AuditStore(db_url, durability=durability) as store:  # type: ignore[arg-type]
        seen = _trace(store)

        async def one() -> None:
            act = action()
            audit_id = await store.begin(act, decide(act), None)
            await store.finish(audit_id, Result(act, ResultStatus.SUCCESS, attempts=1))

        await asyncio.gather(*(one() for _ in range(200)))
        assert store.count() == 200
    assert len(_sync_of_each_commit(seen)) < 200
