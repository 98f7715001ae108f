"""The audit commands on PostgreSQL (``pytest -m postgres``): same output, same exit codes."""

from __future__ import annotations

import json

import pytest
from cli_helpers import RunCli
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.postgres


def test_demo_audit_stats_verify_on_postgres(run_cli: RunCli, pg_url: str) -> None:
    assert run_cli("demo", "--db", pg_url).code == 0
    records = json.loads(run_cli("audit", "--db", pg_url, "-f", "json").out)
    assert [(r["action_type"], r["decision"], r["result"]) for r in records] == [
        ("read", "auto", "success"),
        ("bulk_update", "approved", "success"),
        ("delete", "blocked", "blocked"),
    ]
    high = json.loads(run_cli("audit", "--db", pg_url, "--risk-level", "high", "-f", "json").out)
    assert [r["id"] for r in high] == [2]
    stats = {s["rule"]: s["total"] for s in json.loads(run_cli("stats", "--db", pg_url, "-f",
                                                               "json").out)}  # fmt: skip
    assert stats == {"read_safe": 1, "bulk_ops_need_approval": 1, "no_deletes": 1}
    assert run_cli("audit", "verify", "--db", pg_url).code == 0

    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE aegis_audit SET target = 'elsewhere' WHERE id = 1"))
    engine.dispose()
    tampered = run_cli("audit", "verify", "--db", pg_url)
    assert tampered.code == 1
    assert "edited: row 1" in tampered.out
