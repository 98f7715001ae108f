"""How the approval book talks to its database: transactions, and where a call runs.

Hot statements run on the book's held driver connection (``approval.sql.BookConnection``); the
cold ones (listing by prefix, the token secret, creating tables) on SQLAlchemy Core (``_tx``).
``run`` decides where a call runs: on SQLite right on the event loop's thread (a request
write is a small commit, cheaper than a thread hop), retried on a worker thread if the
database is busy for more than a few milliseconds; elsewhere always on a worker thread.
Every book write first writes the links queued by ``defer_link`` (``approval.links``).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from aegis.errors import AuditError
from aegis.runtime.approval.links import DeferredLinks
from aegis.runtime.approval.schema import metadata
from aegis.runtime.approval.sql import BookConnection

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore

_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("aegis_inline", default=False)
_T = TypeVar("_T")


class BookTransactions:
    """The database side of an ``ApprovalBook`` (its base class)."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._ready = False
        #: The request table has the ``answer`` column (known once ``_prepare`` ran): an
        #: ``auto`` approval's answer is then kept in its request row (``approval.alongside``).
        self._inline_answers = False
        #: An ``auto`` approval is kept in its action's record, with no request row
        #: (``approval.folded``); ``AEGIS_FOLD_APPROVALS=0`` keeps a row for it instead.
        self.fold = fold_setting()
        self._raw = BookConnection(store)
        #: (request id, audit id) links not written yet (see ``defer_link``).
        self._links = DeferredLinks(self)

    def _prepare(self) -> None:
        """Create the tables once (another thread or process may be doing it too: retried)."""
        if not self._ready:
            from aegis.runtime.approval.migrate import ensure_answer_column, ensure_indexes
            from aegis.runtime.audit.opening import create_tables

            engine = self._store.engine
            try:
                create_tables(engine, tables=metadata)
            except SQLAlchemyError as exc:
                url = self._store.safe_url
                raise AuditError(f"approval store at {url}: {_one_line(exc)}") from exc
            ensure_indexes(engine)  # an older store's (never raises: see approval.migrate)
            has_answer = ensure_answer_column(engine)  # the same
            self._inline_answers = self._raw.answer_column = has_answer
            self._ready = True

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A SQLAlchemy transaction, for the statements off the hot path."""
        store = self._store
        self._prepare()
        try:
            with store.read_lock():
                engine = store.engine
                with engine.begin() as conn:
                    if engine.dialect.name == "sqlite":
                        _tune_sqlite(conn, store.busy_timeout)
                    yield conn
        except SQLAlchemyError as exc:
            raise AuditError(f"approval store at {store.safe_url}: {_one_line(exc)}") from exc

    @contextmanager
    def _write(self) -> Iterator[tuple[Any, dict[str, str]]]:
        """A write transaction on the held connection (cursor, SQL), pending links first."""
        self._prepare()
        with self._raw.transaction(write=True, inline=_INLINE.get()) as cur:
            sql = self._raw.sql
            if self._links.queue:
                self._links.write(cur, sql)
            yield cur, sql

    @contextmanager
    def _read(self) -> Iterator[tuple[Any, dict[str, str]]]:
        self._prepare()
        with self._raw.transaction(write=False, inline=_INLINE.get()) as cur:
            yield cur, self._raw.sql

    async def run(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """Call one of this book's methods from async code without stalling the event loop.

        On SQLite the call is made right here (a request write is a small commit that the
        action's own fsynced record makes durable, and a thread hop would cost more than it);
        if the database is busy for more than a few milliseconds, it is retried on a worker
        thread with the store's full busy timeout. Other databases always use a thread.
        """
        if self._inline_ok():
            token = _INLINE.set(True)
            try:
                result: _T = fn(*args, **kwargs)
                return result
            except AuditError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            finally:
                _INLINE.reset(token)
        threaded: _T = await asyncio.to_thread(fn, *args, **kwargs)
        return threaded

    def _inline_ok(self) -> bool:
        store = self._store
        return store.url.startswith("sqlite") and not store.in_memory and self._ready

    def flush_links(self) -> None:
        """Write every pending ``defer_link`` now."""
        self._links.flush()

    def flush_links_inline(self) -> bool:
        """``flush_links`` on this thread, if SQLite lets it write at once; False when it is
        busy or inline writes do not apply (the caller then uses a worker thread)."""
        if not self._inline_ok():
            return False
        token = _INLINE.set(True)
        try:
            self.flush_links()
            return True
        except AuditError:
            return False
        finally:
            _INLINE.reset(token)


def _tune_sqlite(conn: Connection, busy_timeout: float) -> None:
    """Request writes need no fsync of their own: the action's record, committed with
    ``synchronous=FULL`` right after, makes them durable too (WAL order), and a process crash
    loses nothing committed. Inline calls wait at most 20 ms for the lock."""
    dbapi = conn.connection.dbapi_connection
    info = conn.connection.info
    if not info.get("aegis_normal"):
        dbapi.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]
        info["aegis_normal"] = True
    inline = _INLINE.get()
    if info.get("aegis_inline") != inline:
        timeout = 20 if inline else int(1000 * busy_timeout)
        dbapi.execute(f"PRAGMA busy_timeout={timeout}")  # type: ignore[union-attr]
        info["aegis_inline"] = inline


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def fold_setting() -> bool:
    """``AEGIS_FOLD_APPROVALS`` (default on). Off is for stores read by tools, or older Aegis
    versions during an upgrade, that look for every request in ``aegis_approval_request``."""
    text = os.environ.get("AEGIS_FOLD_APPROVALS", "1").strip().lower()
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise AuditError(f"AEGIS_FOLD_APPROVALS: expected 1 or 0 (on/off), not {text[:40]!r}")
