"""Opening a database for the audit store: engine, pragmas, tables, the chain head, the guard.

Kept apart from ``audit`` (the store's API) because it is everything that depends on the
dialect: SQLite gets WAL, its busy timeout and synchronous pragma on every connection, a
``StaticPool`` for memory databases and a ``FileGuard`` for files; every dialect gets its tables
created (tolerating a concurrent creator) and its chain head checked before anything is written.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, insert, make_url, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from aegis.errors import AuditError
from aegis.runtime.audit.file import FileGuard
from aegis.runtime.audit.schema import GENESIS_HASH, audit_log, chain_head, metadata
from aegis.runtime.audit.writer import one_line


def make_engine(url: str, busy_timeout: float, durability: str) -> tuple[Engine, bool]:
    try:
        parsed = make_url(url)
    except Exception as exc:
        safe = url.partition("://")[0] + "://..."
        raise AuditError(f"not a database URL: {safe} ({one_line(exc)})") from exc
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True), False
    database = parsed.database or ""
    memory = database in ("", ":memory:") or "mode=memory" in str(parsed)
    options: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": busy_timeout}
    }
    if memory:
        options["poolclass"] = StaticPool
    engine = create_engine(parsed, **options)
    sync = "FULL" if durability == "full" else "NORMAL"

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            if not memory:
                with contextlib.suppress(Exception):  # a read-only file can still be read
                    cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync}")
        finally:
            cur.close()

    return engine, memory


def create_tables(engine: Engine, attempts: int = 5, *, tables: Any = None) -> None:
    """``create_all``, tolerating another process creating the same tables at the same moment.

    ``tables`` is another ``MetaData`` (the approval tables); by default the audit's own.
    """
    for attempt in range(attempts):
        try:
            (tables if tables is not None else metadata).create_all(engine)
            return
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def tables_engine(url: str, tables: Any, *, busy_timeout: float = 10.0) -> Engine:
    """An engine on the audit database at ``url`` for a plugin's own ``tables`` (a
    ``MetaData``: MCP tool pins, hook pairings), created if missing.

    Why here: a plugin that called ``create_engine`` itself got none of the store's SQLite
    settings (WAL, busy timeout) and so could meet "database is locked" beside the store's
    writer, and none of its URL checks. Same opening as ``AuditStore``, at full durability.
    """
    engine, _ = make_engine(url, busy_timeout, "full")
    create_tables(engine, tables=tables)
    return engine


def ensure_head(engine: Engine) -> None:
    """Create the chain head of a new trail; refuse to open a trail whose head is damaged.

    Re-creating a deleted head at genesis would restart ids at 1 (every later write collides
    with an existing row) and hide the deletion, so a head that is missing while records exist,
    or that is behind the last record, is an ``AuditError`` naming the damage.
    """
    # One statement, so one snapshot: read separately, another process's commit in between
    # would look like a row beyond the head.
    head_id = select(chain_head.c.last_id).where(chain_head.c.id == 1).scalar_subquery()
    top_id = select(func.max(audit_log.c.id)).scalar_subquery()
    with engine.connect() as conn:
        head, last_row = conn.execute(select(head_id, top_id)).one()
        if head is not None:
            if last_row is not None and int(last_row) > int(head):
                raise AuditError(
                    f"audit record {int(last_row)} lies beyond the chain head (id {int(head)}):"
                    " rows were inserted or the head was rolled back; run 'aegis audit verify'"
                )
            return
        if last_row is not None:
            raise AuditError(
                f"the audit chain head is missing (table aegis_audit_head has no row) while the "
                f"trail holds records up to id {int(last_row)}: it was deleted; run 'aegis audit "
                "verify' and restore the store before writing to it"
            )
        try:
            conn.execute(
                insert(chain_head).values(id=1, last_id=0, last_hash=GENESIS_HASH, last_final=0)
            )
            conn.commit()
        except IntegrityError:  # another process created it first
            conn.rollback()


def file_guard(engine: Engine) -> FileGuard | None:
    """A guard for a SQLite file database (none for memory databases and other dialects)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return FileGuard(database)


def write_connection(engine: Engine) -> Any:
    raw = engine.raw_connection()
    if engine.dialect.name == "sqlite":
        raw.driver_connection.isolation_level = None  # type: ignore[union-attr]
    return raw
