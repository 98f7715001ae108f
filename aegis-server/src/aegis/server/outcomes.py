"""Authorised records whose caller still owes the outcome (``/execute`` without an executor),
in the audit database so every replica can take a report or close an overdue record."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, create_engine, select
from sqlalchemy.engine import Engine

from aegis.errors import AuditError
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
_SETTLE = "DELETE FROM aegis_server_outcomes WHERE audit_id = ?"
_OWE = (
    "INSERT INTO aegis_server_outcomes (audit_id, key_name, deadline, created_at) "
    "VALUES (?, ?, ?, ?)"
)


class NotOwed(AuditError):
    """Nobody owes this record's outcome (reported, closed, or never authorised here)."""


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

    def settle(self, audit_id: int, *, overdue_at: float | None = None) -> SideWrite:
        """The side write of the record's ``finish``: the duty to report goes in the very
        transaction that writes the outcome, so exactly one report or reaper wins, and a
        failed write leaves the record owed (reported again, or reaped later), never pending
        with nobody to close it. Raises ``NotOwed`` (rolling the outcome back) when nobody
        owes it any more, or (``overdue_at``) it is not overdue."""
        args: tuple[Any, ...] = (str(audit_id),)
        sql = _SETTLE
        if overdue_at is not None:
            sql, args = f"{_SETTLE} AND deadline < ?", (*args, overdue_at)

        def write(cur: Any, st: Statements, _audit_id: int) -> None:
            cur.execute(st.convert(sql), args)
            if cur.rowcount != 1:
                raise NotOwed(f"record {audit_id} awaits no report")

        return write

    def drop(self, audit_id: int) -> None:
        """Forget a record that is final already (closed some other way, e.g. ``aegis audit
        recover``), so the reaper stops finding it."""
        with self.engine.begin() as conn:
            conn.execute(outcomes_table.delete().where(outcomes_table.c.audit_id == str(audit_id)))

    def overdue(self, now: float) -> list[int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outcomes_table.c.audit_id).where(outcomes_table.c.deadline < now)
            ).all()
        return [int(r[0]) for r in rows]

    def dispose(self) -> None:
        self.engine.dispose()
