"""Columns added to ``aegis_audit`` after its first release, and reading stores without them.

Added since: ``owner`` (audit_interrupted), ``parent_agent_id``, ``chain_id``, ``chain_depth``
(delegation), ``shadow`` (shadow mode), ``approval_request`` and ``approval_answers`` (the
seal of a request's answers, ``approval.seal``). A writable store gets them by ``ALTER TABLE ... ADD
COLUMN`` when it opens (all nullable; no row is rewritten, no hash changes). A store that is
only read (an auditor's copy, a read-only file) is never altered: readers select NULL in place
of a missing column, which is exactly what those rows would hold, and what the chain hashed
for them.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Engine, inspect, null, text
from sqlalchemy.schema import CreateIndex

from aegis.runtime.audit.schema import audit_log

#: Column name -> SQL type, for the ALTER TABLE of an older store.
ADDED_COLUMNS: dict[str, str] = {
    "owner": "VARCHAR(255)",
    "parent_agent_id": "VARCHAR(255)",
    "chain_id": "VARCHAR(255)",
    "chain_depth": "INTEGER",
    "shadow": "TEXT",
    "approval_request": "VARCHAR(32)",
    "approval_answers": "TEXT",
}

_present: weakref.WeakKeyDictionary[Engine, frozenset[str]] = weakref.WeakKeyDictionary()


def _columns(engine: Engine) -> frozenset[str]:
    return frozenset(c["name"] for c in inspect(engine).get_columns("aegis_audit"))


def ensure_columns(engine: Engine) -> None:
    """Add whatever later columns (and their indexes) an older store lacks."""
    have = _columns(engine)
    for name, sql_type in ADDED_COLUMNS.items():
        if name in have:
            continue
        try:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE aegis_audit ADD COLUMN {name} {sql_type}"))
        except Exception:
            # Another process added it at the same moment; anything else shows on the re-check.
            if name not in _columns(engine):
                raise
    # IF NOT EXISTS, not checkfirst: SQLAlchemy cannot reflect the expression index on
    # lower(action_type), so a check would never see it and create it twice.
    for attempt in (1, 2):
        try:
            with engine.begin() as conn:
                for index in audit_log.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))
            break
        except Exception:
            if attempt == 2:  # not another process creating the same index at the same moment
                raise
    _present[engine] = _columns(engine)


def readable(engine: Engine, names: Any) -> list[Any]:
    """Columns to select: the real column where the store has it, else a NULL labelled so."""
    wanted = [c if isinstance(c, str) else c.name for c in names]
    present = _present.get(engine)
    if present is None or not present.issuperset(wanted):
        # Unknown, or missing something: look again (another process may have migrated it).
        present = _present[engine] = _columns(engine)
    return [audit_log.c[n] if n in present else null().label(n) for n in wanted]
