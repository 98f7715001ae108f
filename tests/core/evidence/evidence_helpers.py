"""The tamperer's tools: raw SQL and the (public) hashing rules, nothing of the store's API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text

from aegis.runtime.audit.chain import canonical, intent_json, result_hash, row_hash
from aegis.runtime.audit.schema import GENESIS_HASH, INTENT_COLUMNS, RESULT_COLUMNS


def rewrite_consistently(url: str, record_id: int, column: str, value: Any) -> None:
    """Edit one record, then recompute every hash after it and the head: the chain verifies."""
    engine = create_engine(url)
    cols = ["id", *INTENT_COLUMNS, *RESULT_COLUMNS, "result_hash"]
    try:
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE aegis_audit SET {column} = :v WHERE id = :i"),
                {"v": value, "i": record_id},
            )
            rows = conn.execute(text(f"SELECT {', '.join(cols)} FROM aegis_audit ORDER BY id"))
            prev = GENESIS_HASH
            updates = []
            for row in rows.mappings():
                intent = intent_json([row[c] for c in INTENT_COLUMNS])
                new = row_hash(prev, int(row["id"]), intent)
                sealed = None
                if row["result_hash"] is not None:
                    sealed = result_hash(new, canonical([row[c] for c in RESULT_COLUMNS]))
                updates.append({"p": prev, "h": new, "s": sealed, "i": row["id"]})
                prev = new
            for u in updates:
                conn.execute(
                    text(
                        "UPDATE aegis_audit SET prev_hash = :p, row_hash = :h, result_hash = :s "
                        "WHERE id = :i"
                    ),
                    u,
                )
            conn.execute(
                text("UPDATE aegis_audit_head SET last_hash = :h WHERE id = 1"), {"h": prev}
            )
    finally:
        engine.dispose()


def truncate(url: str, keep: int) -> None:
    """Cut the trail after record ``keep`` and move the head back: the chain verifies."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM aegis_audit WHERE id > :k"), {"k": keep})
            last = conn.execute(
                text(
                    "SELECT row_hash, (SELECT max(final_seq) FROM aegis_audit) "
                    "FROM aegis_audit WHERE id = :k"
                ),
                {"k": keep},
            ).one()
            conn.execute(
                text(
                    "UPDATE aegis_audit_head SET last_id = :k, last_hash = :h, last_final = :f "
                    "WHERE id = 1"
                ),
                {"k": keep, "h": last[0], "f": last[1] or 0},
            )
    finally:
        engine.dispose()
