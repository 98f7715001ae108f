"""The request table's index on state is partial (pending requests only), and an older store's
full index is replaced when its book is first used; on SQLite and (``-m postgres``) PostgreSQL.

An ``auto``-approved request, written settled with its record, stays in no state index, and is
still found, shown and verified like any other.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from approval_helpers import PAY, PAY_POLICY, run_auto
from sqlalchemy import create_engine, inspect, text

from aegis import Policy
from aegis.runtime.approval.migrate import OLD_STATE_INDEX, ensure_indexes
from aegis.runtime.audit import AuditStore

#: These tests are about the request row an ``auto`` approval has when it is not folded.
pytestmark = pytest.mark.usefixtures("request_rows")

NEW_INDEX = "ix_aegis_approval_request_pending"
AEGIS = Path(sys.executable).with_name("aegis")


def sql(url: str, statement: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            found = conn.execute(text(statement))
            return list(found) if found.returns_rows else []
    finally:
        engine.dispose()


def indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {ix["name"] for ix in inspect(engine).get_indexes("aegis_approval_request")}
    finally:
        engine.dispose()


def make_old(url: str) -> None:
    """The request table as stores before the partial index had it."""
    sql(url, f"DROP INDEX {NEW_INDEX}")
    sql(url, f"CREATE INDEX {OLD_STATE_INDEX} ON aegis_approval_request (state)")


async def test_an_auto_approved_request_is_found_shown_and_verified(url: str) -> None:
    result = await run_auto(url)
    assert result.ok and result.approval is not None
    rid = result.approval.request_id
    assert rid is not None
    assert indexes(url) >= {NEW_INDEX} and OLD_STATE_INDEX not in indexes(url)
    env = {**os.environ, "AEGIS_AUDIT_URL": url}
    shown = subprocess.run(
        [str(AEGIS), "approvals", "show", rid[:10], "-f", "json"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["id"], data["state"], data["audit_id"]) == (rid, "approved", result.audit_id)
    assert data["params"] == {"amount": 5000, "to": "acct-1"}
    assert data["channels"] == ["auto"]
    ((answer),) = data["answers"]
    assert (answer["responder"], answer["verdict"], answer["accepted"]) == (
        "auto:auto",
        "approve",
        True,
    )
    async with AuditStore(url) as store:
        assert store.approvals.list(state="pending") == []
        (approved,) = store.approvals.list(state="approved")
        assert approved.id == rid and approved.approvers == ("auto:auto",)
        report = store.verify()
    assert report.ok and report.unchained_answers == 0


async def test_an_older_store_gets_the_partial_index_and_keeps_its_requests(url: str) -> None:
    first = await run_auto(url)  # creates the tables (current schema)
    make_old(url)
    assert OLD_STATE_INDEX in indexes(url) and NEW_INDEX not in indexes(url)
    async with AuditStore(url) as store:  # a pending request written under the old index
        request = store.approvals.create(
            PAY,
            Policy.from_yaml_string(PAY_POLICY).evaluate(PAY),
            window=3600.0,
            channels=["queue"],
            params_view=dict(PAY.params),
        )
    async with AuditStore(url) as store:  # a new book on the old store: migrated
        pending = store.approvals.list(state="pending")
        assert [r.id for r in pending] == [request.id]
    found = indexes(url)
    assert NEW_INDEX in found and OLD_STATE_INDEX not in found
    second = await run_auto(url)
    assert first.ok and second.ok
    async with AuditStore(url) as store:
        assert [r.id for r in store.approvals.list(state="pending")] == [request.id]
        assert len(store.approvals.list(state="approved")) == 2
        assert store.verify().ok


def test_the_reapers_query_uses_the_partial_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore(url)
    try:
        store.approvals.list(state="pending")  # creates the tables
    finally:
        store.close_sync()
    plan = sql(
        url,
        "EXPLAIN QUERY PLAN SELECT id FROM aegis_approval_request WHERE state = 'pending' "
        "ORDER BY created_at DESC",
    )
    assert any(NEW_INDEX in str(row) for row in plan), plan


def test_a_store_that_cannot_be_changed_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An old read-only copy: the migration fails, is logged, and the book still reads it."""
    path = tmp_path / "audit.db"
    url = f"sqlite:///{path}"
    store = AuditStore(url)
    try:
        store.approvals.list()
    finally:
        store.close_sync()
    make_old(url)
    engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with caplog.at_level(logging.WARNING, logger="aegis.approvals"):
            ensure_indexes(engine)
    finally:
        engine.dispose()
    assert "could not update the approval request indexes" in caplog.text
    assert OLD_STATE_INDEX in indexes(url)
