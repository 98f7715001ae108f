"""The store's public read API (``reading`` / ``read``), used by reports and evidence commands
that run SQL of their own: one lock, one missing-trail check, one error line, no privates."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_helpers import run_action
from sqlalchemy import Engine, text

from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.delegation import chain_records


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


async def test_read_hands_the_engine_and_the_arguments_to_the_function(store: AuditStore) -> None:
    for _ in range(3):
        await run_action(store)
    assert store.read(_count, "aegis_audit") == 3
    with store.reading() as engine:
        assert _count(engine, "aegis_audit") == 3


def test_a_url_without_a_trail_is_one_audit_error_naming_it(tmp_path: Path) -> None:
    reader = AuditStore(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(AuditError, match=r"^no audit trail at sqlite:///.*empty\.db$"):
        reader.read(chain_records, "any")


async def test_a_database_error_inside_is_one_line_without_the_sql(store: AuditStore) -> None:
    await run_action(store)
    with pytest.raises(AuditError) as caught:
        store.read(_count, "no_such_table")
    message = str(caught.value)
    assert message.startswith("cannot read the audit store at sqlite:///")
    assert "no such table: no_such_table" in message
    assert "\n" not in message and "[SQL:" not in message and "sqlalche.me" not in message


def test_the_public_url_hides_the_password() -> None:
    reader = AuditStore("postgresql+psycopg://aegis:s3cret@db.invalid/audit")
    assert "s3cret" not in reader.safe_url
    assert reader.safe_url.startswith("postgresql+psycopg://aegis:***@db.invalid")


def test_in_memory_is_known_before_the_store_opens(tmp_path: Path) -> None:
    assert AuditStore("sqlite:///:memory:").in_memory
    assert not AuditStore(f"sqlite:///{tmp_path / 'a.db'}").in_memory


async def test_an_in_memory_store_is_read_under_its_writer_connection_lock() -> None:
    async with AuditStore("sqlite:///:memory:") as store:
        await run_action(store)
        with store.reading() as engine:
            # The writer cannot take the one connection while a read holds it.
            assert store._writer is not None
            assert not store._writer.connection_lock.acquire(blocking=False)
            assert _count(engine, "aegis_audit") == 1
        assert store._writer.connection_lock.acquire(blocking=False)
        store._writer.connection_lock.release()
