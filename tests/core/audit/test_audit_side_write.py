"""``begin``/``finish`` with ``side_write``: a caller's row is committed with the audit row, or
neither is, also when the write shares its transaction with other callers' writes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aegis import Action, Result, ResultStatus
from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.writer import Statements

SIDE = "CREATE TABLE side (audit_id INTEGER PRIMARY KEY, note TEXT)"


def _note(text: str) -> Any:
    def write(cur: Any, st: Statements, audit_id: int) -> None:
        cur.execute(st.convert("INSERT INTO side (audit_id, note) VALUES (?, ?)"), (audit_id, text))

    return write


def _broken(cur: Any, st: Statements, audit_id: int) -> None:
    raise RuntimeError("injected failure in the side write")


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql))


async def test_side_writes_commit_with_their_row_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    async with AuditStore(f"sqlite:///{path}") as store:
        _rows(path, SIDE)
        first = await store.begin(Action("t", "x"), None, side_write=_note("began"))
        with pytest.raises(AuditError, match="injected failure"):
            await store.begin(Action("t", "y"), None, side_write=_broken)
        await store.finish(
            first,
            Result(Action("t", "x"), ResultStatus.SUCCESS),
            side_write=lambda cur, st, audit_id: cur.execute(
                st.convert("UPDATE side SET note = ? WHERE audit_id = ?"), ("finished", audit_id)
            ),
        )
        begun = await store.begin(Action("t", "z"), None)
        with pytest.raises(AuditError, match="injected failure"):
            await store.finish(
                begun, Result(Action("t", "z"), ResultStatus.SUCCESS), side_write=_broken
            )
        assert store.verify().ok
    # The failed begin wrote nothing (no row, no gap in the chain); the failed finish left its
    # row pending, so it can still be finished or recovered.
    assert _rows(path, "SELECT id, target, result FROM aegis_audit ORDER BY id") == [
        (1, "x", "success"),
        (2, "z", "pending"),
    ]
    assert _rows(path, "SELECT audit_id, note FROM side") == [(1, "finished")]


async def test_a_failing_side_write_in_a_shared_transaction_fails_only_its_own_op(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.db"
    async with AuditStore(f"sqlite:///{path}") as store:
        _rows(path, SIDE)
        writes = [
            store.begin(Action("t", f"n{i}"), None, side_write=_broken if i == 3 else _note(str(i)))
            for i in range(8)
        ]
        got = await asyncio.gather(*writes, return_exceptions=True)  # concurrent: batched
    assert [isinstance(g, AuditError) for g in got] == [i == 3 for i in range(8)]
    ids = [g for g in got if isinstance(g, int)]
    assert sorted(r[0] for r in _rows(path, "SELECT audit_id FROM side")) == sorted(ids)
    assert len(_rows(path, "SELECT id FROM aegis_audit")) == 7
