"""``aegis_approval_request.answer``: an older store gains it when its book is first used, and
a store where it cannot be added keeps working, its ``auto`` answers written as answer rows.

On SQLite and (``-m postgres``) PostgreSQL. Each test fails if an older store lost a request or
an answer, if an action ran without both recorded, or if ``verify`` passed off a trail that
was not intact (or failed one that was).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from approval_helpers import PAY, PAY_POLICY, run_auto
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.pool import Pool

from aegis import Policy
from aegis.runtime.approval import migrate
from aegis.runtime.approval.migrate import ensure_answer_column
from aegis.runtime.audit import AuditStore

#: These tests are about the request row an ``auto`` approval has when it is not folded.
pytestmark = pytest.mark.usefixtures("request_rows")

AEGIS = Path(sys.executable).with_name("aegis")


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            found = conn.execute(text(statement), params)
            return list(found) if found.returns_rows else []
    finally:
        engine.dispose()


def has_column(url: str) -> bool:
    engine = create_engine(url)
    try:
        return "answer" in {
            c["name"] for c in inspect(engine).get_columns("aegis_approval_request")
        }
    finally:
        engine.dispose()


def make_old(url: str) -> None:
    """A store from before the column: its tables, without ``answer``."""
    store = AuditStore(url)
    try:
        store.open_sync()  # the audit tables
        store.approvals.list()  # and the approval tables (current schema)
    finally:
        store.close_sync()
    sql(url, "ALTER TABLE aegis_approval_request DROP COLUMN answer")
    assert not has_column(url)


def answer_rows(url: str) -> list[Any]:
    return sql(url, "SELECT request_id, responder, accepted FROM aegis_approval_answer")


def shown(url: str, rid: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AEGIS_AUDIT_URL": url}
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [str(AEGIS), "approvals", "show", rid],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        stdin=subprocess.DEVNULL,
    )


async def test_an_older_store_gains_the_column_and_keeps_its_requests(url: str) -> None:
    make_old(url)
    async with AuditStore(url) as store:  # a pending request, written before the column
        pending = store.approvals.create(
            PAY,
            Policy.from_yaml_string(PAY_POLICY).evaluate(PAY),
            window=3600.0,
            channels=["queue"],
            params_view=dict(PAY.params),
        )
    assert has_column(url)  # the first book on it added the column
    result = await run_auto(url)
    assert result.ok
    assert result.approval is not None and result.approval.request_id is not None
    assert (result.approval.answers_seal or "").startswith("inline:")
    assert answer_rows(url) == []
    async with AuditStore(url) as store:
        assert [r.id for r in store.approvals.list(state="pending")] == [pending.id]
        (approved,) = store.approvals.list(state="approved")
        assert approved.approvers == ("auto:auto",)
        report = store.verify()
    assert report.ok and report.unchained_answers == 0


async def test_adding_the_column_is_idempotent_and_a_concurrent_add_is_success(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_old(url)
    engine = create_engine(url)
    try:
        assert ensure_answer_column(engine) and ensure_answer_column(engine)
        # Another process added it between our look and our ALTER: "duplicate column" on
        # SQLite (IF NOT EXISTS on PostgreSQL), and the column is there: done, not a failure.
        looks: list[bool] = []
        real = migrate._has_answer_column

        def stale_first(e: Any) -> bool:
            looks.append(real(e))
            return len(looks) > 1 and looks[-1]  # the first look misses it

        monkeypatch.setattr(migrate, "_has_answer_column", stale_first)
        assert ensure_answer_column(engine)
        # SQLite: the ALTER failed ("duplicate column") and the re-check found it.
        assert looks == ([True, True] if url.startswith("sqlite") else [True])
    finally:
        engine.dispose()
    make_old(url)
    engines = [create_engine(url) for _ in range(4)]
    found: list[bool] = []
    gate = threading.Barrier(len(engines))

    def add(engine: Any) -> None:
        gate.wait()
        found.append(ensure_answer_column(engine))

    threads = [threading.Thread(target=add, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert found == [True] * len(engines) and has_column(url)


def _refuse_alter(action: int, *_args: Any) -> int:
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ALTER_TABLE else sqlite3.SQLITE_OK


def _no_alter_on_connect(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.set_authorizer(_refuse_alter)


@contextlib.contextmanager
def no_ddl(url: str) -> Iterator[str]:
    """The store, as a user who may read and write its rows but not change its tables: on
    SQLite an authorizer refusing ALTER TABLE on every connection this process opens
    meanwhile, on PostgreSQL an event trigger refusing ALTER TABLE. (A role that does not own
    the tables cannot open the audit store at all: it creates its indexes IF NOT EXISTS,
    which PostgreSQL allows only the owner.)"""
    if url.startswith("sqlite"):
        event.listen(Pool, "connect", _no_alter_on_connect)
        try:
            yield url
        finally:
            event.remove(Pool, "connect", _no_alter_on_connect)
        return
    sql(
        url,
        "CREATE FUNCTION refuse_alter() RETURNS event_trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'no DDL rights (test)'; END $$ LANGUAGE plpgsql",
    )
    sql(
        url,
        "CREATE EVENT TRIGGER refuse_alter ON ddl_command_start WHEN TAG IN ('ALTER TABLE') "
        "EXECUTE FUNCTION refuse_alter()",
    )
    try:
        yield url
    finally:
        sql(url, "DROP EVENT TRIGGER refuse_alter")


async def test_a_store_whose_column_cannot_be_added_keeps_working(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_old(url)
    with no_ddl(url) as limited:
        result = await run_auto(limited)  # no column: the answer is an answer row, as before
        assert result.ok
        assert "could not add the answer column" in caplog.text
        assert not has_column(url)
        assert result.approval is not None
        rid = result.approval.request_id
        assert rid is not None
        assert answer_rows(url) == [(rid, "auto:auto", 1)]
        seal = result.approval.answers_seal or ""
        assert seal and not seal.startswith("inline:")
        async with AuditStore(limited) as store:
            (answer,) = store.approvals.get(rid).answers
            assert answer.id is not None and answer.responder == "auto:auto" and answer.accepted
            record = store.get(result.audit_id)  # type: ignore[arg-type]
            assert record is not None and record.approval_answers == seal
            report = store.verify()
        assert report.ok and report.unchained_answers == 0
    # Its owner opens it later: the column is added, and old and new requests both read back.
    second = await run_auto(url)
    assert second.ok
    assert has_column(url) and len(answer_rows(url)) == 1
    assert second.approval is not None
    assert (second.approval.answers_seal or "").startswith("inline:")
    async with AuditStore(url) as store:
        both = store.approvals.list(state="approved")
        assert sorted(r.approvers for r in both) == [("auto:auto",), ("auto:auto",)]
        report = store.verify()
    assert report.ok and report.unchained_answers == 0
    sql(url, "DELETE FROM aegis_approval_answer")  # the old one is sealed as it always was
    async with AuditStore(url) as store:
        assert store.verify().ids_of("approval_answers") == [result.audit_id]


async def test_approvals_show_names_who_approved_an_auto_request(url: str) -> None:
    result = await run_auto(url)
    assert result.ok
    assert result.approval is not None and result.approval.request_id is not None
    rid = result.approval.request_id
    out = shown(url, rid)
    assert out.returncode == 0, out.stderr
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("answer")]
    assert "auto:auto approve (accepted)" in line
    data = json.loads(sql(url, "SELECT answer FROM aegis_approval_request")[0][0])
    assert data[2] == "auto:auto"
