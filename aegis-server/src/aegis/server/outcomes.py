"""Authorised records whose caller still owes the outcome (``/execute`` without an executor),
in the audit database so every replica can take a report or close an overdue record."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, create_engine, delete, select
from sqlalchemy.engine import Engine

from aegis.runtime.audit.writer import SideWrite, Statements

_meta = MetaData()
outcomes_table = Table(
    "aegis_server_outcomes",
    _meta,
    Column("audit_id", String(32), primary_key=True),
    Column("key_name", String(64), nullable=False),
    Column("deadline", Float, nullable=False),
    Column("created_at", Float, nullable=False),
)

REPORTABLE = ("success", "failed", "skipped")
_OWE = (
    "INSERT INTO aegis_server_outcomes (audit_id, key_name, deadline, created_at) "
    "VALUES (?, ?, ?, ?)"
)


class Outcomes:
    """Authorised records whose caller still owes the outcome, shared by all replicas."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        _meta.create_all(self.engine)

    def owe(self, key_name: str, timeout: float) -> SideWrite:
        """The side write of the authorised record (``Runtime.authorize``): ``key_name`` owes
        its outcome within ``timeout`` s. One transaction with the pending row, so no
        authorised record is ever left without someone to report it or a deadline to close
        it by."""

        def write(cur: Any, st: Statements, audit_id: int) -> None:
            now = time.time()
            cur.execute(st.convert(_OWE), (str(audit_id), key_name, now + timeout, now))

        return write

    def owner(self, audit_id: int) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(outcomes_table.c.key_name).where(outcomes_table.c.audit_id == str(audit_id))
            ).first()
        return None if row is None else str(row[0])

    def claim(self, audit_id: int, *, overdue_at: float | None = None) -> bool:
        """Take the duty to finish a record; exactly one claimant (report or reaper) wins."""
        stmt = delete(outcomes_table).where(outcomes_table.c.audit_id == str(audit_id))
        if overdue_at is not None:
            stmt = stmt.where(outcomes_table.c.deadline < overdue_at)
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def overdue(self, now: float) -> list[int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outcomes_table.c.audit_id).where(outcomes_table.c.deadline < now)
            ).all()
        return [int(r[0]) for r in rows]

    def dispose(self) -> None:
        self.engine.dispose()
