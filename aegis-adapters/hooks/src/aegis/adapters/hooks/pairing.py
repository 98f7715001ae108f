"""Which pending audit row belongs to which tool call, kept in the audit database.

``PreToolUse`` writes the row and its pairing (call id -> audit id, and when the report is due)
in one transaction (``AuditStore.begin(side_write=...)``); ``PostToolUse`` or ``reap`` writes
the outcome and drops the pairing in one transaction (``finish(side_write=...)``). So a crash
or a failed write can never leave a pending row without the pairing that lets it be closed, nor
a pairing dropped while its row stays pending.

Every row is paired, even without an id to pair it by: a call that has none (or whose id a
later call took over) is kept under ``audit:<id>``, reachable only by its deadline. Rows left
unpaired by versions before this one are closed by ``aegis audit recover --older-than``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, select

from aegis.runtime.audit.writer import SideWrite, Statements

metadata = MetaData()
pending_table = Table(
    "aegis_hook_pending",
    metadata,
    Column("call_id", String(255), primary_key=True),
    Column("audit_id", BigInteger, nullable=False),
    Column("due_at", Float, nullable=False, index=True),
)

# An id seen again (Cursor pairs by conversation, generation and command, which can repeat):
# the earlier row keeps its deadline under a key of its own, and the new call takes the id.
_SUPERSEDE = (
    "UPDATE aegis_hook_pending SET call_id = 'audit:' || CAST(audit_id AS VARCHAR(32)) "
    "WHERE call_id = ?"
)
_PAIR = "INSERT INTO aegis_hook_pending (call_id, audit_id, due_at) VALUES (?, ?, ?)"
_UNPAIR = "DELETE FROM aegis_hook_pending WHERE audit_id = ?"


def pair(call_id: str | None, due_at: float) -> SideWrite:
    """The side write of ``begin``: pair the new row with ``call_id`` (or with its own id)."""

    def write(cur: Any, st: Statements, audit_id: int) -> None:
        if call_id is not None:
            cur.execute(st.convert(_SUPERSEDE), (call_id,))
        key = call_id if call_id is not None else f"audit:{audit_id}"
        cur.execute(st.convert(_PAIR), (key, audit_id, due_at))

    return write


def unpair(cur: Any, st: Statements, audit_id: int) -> None:
    """The side write of ``finish``: the row is final, its pairing goes with it."""
    cur.execute(st.convert(_UNPAIR), (audit_id,))


_engines: dict[str, Any] = {}


def ready(url: str) -> bool:
    """The table exists (this process made sure of it): the daemon's calls skip the check."""
    return url in _engines


def engine(url: str) -> Any:
    """One engine per database for the life of the process (the daemon serves many calls)."""
    found = _engines.get(url)
    if found is None:
        from aegis.runtime.audit.opening import tables_engine  # the store's own opening

        found = tables_engine(url, metadata)
        _engines[url] = found
    return found


def paired(url: str, call_id: str) -> int | None:
    """The audit id waiting for ``call_id``'s report, if any."""
    with engine(url).connect() as conn:
        row = conn.execute(
            select(pending_table.c.audit_id).where(pending_table.c.call_id == call_id)
        ).first()
    return None if row is None else int(row[0])


def overdue(url: str, now: float, limit: int = 100) -> list[int]:
    """Audit ids whose report was due by ``now``, oldest deadline first."""
    with engine(url).connect() as conn:
        rows = conn.execute(
            select(pending_table.c.audit_id)
            .where(pending_table.c.due_at <= now)
            .order_by(pending_table.c.due_at)
            .limit(limit)
        )
        return [int(r[0]) for r in rows]


def drop(url: str, audit_id: int) -> None:
    """Forget the pairing of a row that is final already (closed some other way)."""
    with engine(url).begin() as conn:
        conn.execute(pending_table.delete().where(pending_table.c.audit_id == audit_id))
