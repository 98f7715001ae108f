"""How an audit record looks on screen and in exports: shared by listing, export and tail."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis.runtime.audit_record import AuditRecord

TABLE_COLUMNS = ("ID", "Time", "Session", "Agent", "Action", "Target", "Risk", "Decision", "Result")


def table_row(record: AuditRecord) -> tuple[str, ...]:
    created = record.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    session = record.session_id or "-"
    if len(session) > 11:
        session = session[:8] + "..."
    return (
        str(record.id),
        created,
        session,
        record.agent_id or "-",
        record.action_type,
        record.target,
        record.risk_level or "-",
        record.decision,
        record.result,
    )


def record_columns() -> list[str]:
    """Every field of an audit record, in the store's order (the csv header)."""
    import attrs

    from aegis.runtime.audit_record import AuditRecord

    return [field.name for field in attrs.fields(AuditRecord)]
