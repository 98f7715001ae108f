"""The audit table's partial index is partial on both databases, and importing the schema does
not drag in the PostgreSQL dialect (it costs every SQLite CLI and hook start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from aegis.runtime.audit import AuditStore


def test_importing_the_schema_loads_no_postgresql_dialect() -> None:
    code = (
        "import sys, aegis.runtime.audit.schema, aegis.runtime.audit; "
        "print(any(m.startswith('sqlalchemy.dialects.postgresql') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def _open(url: str) -> None:
    store = AuditStore(url)
    await store.open()
    await store.close()


async def test_the_chain_index_is_partial_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await _open(url)
    with create_engine(url).connect() as conn:
        sql = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'ix_aegis_audit_chain'")
        ).scalar_one()
    assert sql.endswith("WHERE chain_id IS NOT NULL")


@pytest.mark.postgres
async def test_the_chain_index_is_partial_on_postgresql(pg_url: str) -> None:
    await _open(pg_url)
    with create_engine(pg_url).connect() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_aegis_audit_chain'")
        ).scalar_one()
    assert "WHERE (chain_id IS NOT NULL)" in definition
