"""Finding records by a keyed tag (``aegis audit hash VALUE --search``)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from aegis.runtime.audit.schema import audit_log


def records_holding(engine: Engine, text: str) -> list[int]:
    """Ids of records whose params contain ``text`` (``aegis audit hash --search``; a scan)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    stmt = (
        select(audit_log.c.id)
        .where(audit_log.c.params.like(f"%{escaped}%", escape="\\"))
        .order_by(audit_log.c.id)
    )
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(stmt)]
