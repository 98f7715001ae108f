"""The same store on a real PostgreSQL server (``pytest -m postgres``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from audit_helpers import Result, ResultStatus, action, decide, raw, run_action, spawn_writers

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore

pytestmark = pytest.mark.postgres


async def test_roundtrip_and_verify(pg_url: str) -> None:
    async with AuditStore(pg_url) as store:
        ok = await run_action(store, action(session_id="s", params={"password": "p"}))
        act = action("delete_user")
        blocked = await store.record(Result(act, ResultStatus.BLOCKED, decision=decide(act)))
        rec = store.get(ok)
        assert rec is not None
        assert (rec.result, rec.params) == ("success", {"password": "[REDACTED]"})
        assert store.get(blocked).result == "blocked"  # type: ignore[union-attr]
        assert store.count(session="s") == 1
        assert store.verify().ok


async def test_tampering_is_named(pg_url: str) -> None:
    async with AuditStore(pg_url) as store:
        for _ in range(5):
            await run_action(store)
    raw(pg_url, "UPDATE aegis_audit SET target = 'x' WHERE id = 2")
    raw(pg_url, "DELETE FROM aegis_audit WHERE id = 4")
    raw(
        pg_url,
        "INSERT INTO aegis_audit (id, created_at, action_type, target, params, description, "
        "decision, result, prev_hash, row_hash) VALUES "
        "(6, 'x', 'read', 'crm', '{}', '', 'auto', 'success', 'a', 'b')",
    )
    report = AuditStore(pg_url).verify()
    assert (report.edited, report.deleted, report.inserted) == ([2], [4], [6])


async def test_intents_skip_the_wal_flush_finals_do_not(pg_url: str) -> None:
    """Watch the statements the writer sends (psycopg's notice-free way: wrap the cursor)."""
    async with AuditStore(pg_url) as store:
        writer: Any = store._writer
        writer.inline = False
        seen: list[str] = []
        conn = writer._conn
        original = conn.cursor

        class Spy:
            def __init__(self, cur: Any) -> None:
                self._cur = cur

            def execute(self, sql: str, *args: Any) -> Any:
                seen.append(sql)
                return self._cur.execute(sql, *args)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._cur, name)

        writer._conn = type("C", (), {})()
        writer._conn.cursor = lambda: Spy(original())
        writer._conn.commit = conn.commit
        writer._conn.rollback = conn.rollback
        writer._conn.close = conn.close
        act = action()
        audit_id = await store.begin(act, decide(act), None)
        intent_statements = list(seen)
        await store.finish(audit_id, Result(act, ResultStatus.SUCCESS, attempts=1))
    assert "SET LOCAL synchronous_commit TO off" in intent_statements
    assert "SET LOCAL synchronous_commit TO off" not in seen[len(intent_statements) :]
    assert any("FOR UPDATE" in s for s in intent_statements)


async def test_concurrent_tasks_share_commits(pg_url: str) -> None:
    async with AuditStore(pg_url) as store:
        await asyncio.gather(*(run_action(store) for _ in range(300)))
        assert store.count() == 300
        assert store.count(result="pending") == 0
        assert store.verify().ok


def test_concurrent_processes_keep_one_chain(pg_url: str) -> None:
    spawn_writers(pg_url, processes=4, actions=75, tasks=5)
    store = AuditStore(pg_url)
    assert store.count() == 300
    for i in range(4):
        assert store.count(session=f"proc{i}") == 75
    report = store.verify()
    assert report.ok, report.summary()
    assert report.last_id == 300


async def test_dropped_table_fails_closed(pg_url: str) -> None:
    async with AuditStore(pg_url) as store:
        await run_action(store)
        raw(pg_url, "DROP TABLE aegis_audit")
        act = action()
        with pytest.raises(AuditError):
            await store.begin(act, decide(act), None)
        # the connection recovers for the next transaction (no poisoned "aborted" state)
        with pytest.raises(AuditError):
            await store.record(Result(act, ResultStatus.BLOCKED, decision=decide(act)))
