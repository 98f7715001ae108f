"""The approval book's hot statements, run on one held driver connection with prebuilt SQL.

Why not SQLAlchemy Core here: an approved action makes small book writes (the request, its
answer, the link to the action's record), and through Core each cost ~200 us of
Python (compile-cache lookup, parameter processing, result proxy, pool checkout and the
rollback-on-return) for a statement SQLite runs in 5-40 us. The audit writer solved the same
problem the same way; this module shares its helpers (``audit.opening.write_connection`` for the
connection, ``audit.writer`` for the paramstyle) instead of copying them. Cold statements (prefix
search, the token secret, creating tables) stay on Core (``approval.transactions._tx``).

One connection is held per store and used by one thread at a time (``BookConnection.lock``).
SQLite: WAL, ``synchronous=NORMAL`` (the action's own record, fsynced right after, makes a
request durable by WAL order), writes in ``BEGIN IMMEDIATE`` so a read-then-write is one
consistent view; PostgreSQL: the driver's transaction and ``commit``. An in-memory SQLite
database is one connection shared with the audit writer: it is checked out per transaction
under the writer's lock instead. Any driver error rolls back, drops the connection (it is
reopened next time) and surfaces as ``AuditError``: the caller fails closed.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aegis.errors import AuditError
from aegis.runtime.approval.folded import STATEMENTS as FOLDED_STATEMENTS
from aegis.runtime.approval.schema import answers, requests
from aegis.runtime.audit.opening import write_connection
from aegis.runtime.audit.writer import _convert

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from aegis.runtime.audit import AuditStore

REQUEST_COLUMNS: tuple[str, ...] = tuple(c.name for c in requests.columns)
#: What ``create`` writes (the rest start NULL).
CREATE_COLUMNS: tuple[str, ...] = tuple(
    c for c in REQUEST_COLUMNS if c not in ("settled_at", "audit_id", "outcome", "edits", "answer")
)
#: Every column of an answer, in table order (what ``approval.seal`` hashes).
ANSWER_COLUMNS: tuple[str, ...] = tuple(c.name for c in answers.columns)
_STORED_ANSWER: tuple[str, ...] = ANSWER_COLUMNS[1:]  # the id is the database's

_REQ, _ANS = requests.name, answers.name
_RAW = {
    "create": f"INSERT INTO {_REQ} ({', '.join(CREATE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in CREATE_COLUMNS)})",
    "create_settled": f"INSERT INTO {_REQ} ({', '.join(CREATE_COLUMNS)}, settled_at, outcome) "
    f"VALUES ({', '.join('?' for _ in CREATE_COLUMNS)}, ?, ?)",
    # A request answered before it was stored, written with its action's record (alongside).
    "create_linked": f"INSERT INTO {_REQ} ({', '.join(CREATE_COLUMNS)}, settled_at, outcome, "
    f"audit_id) VALUES ({', '.join('?' for _ in CREATE_COLUMNS)}, ?, ?, ?)",
    # The same, its one answer held in the row (``answer``) instead of an answer row.
    "create_inline": f"INSERT INTO {_REQ} ({', '.join(CREATE_COLUMNS)}, settled_at, outcome, "
    f"audit_id, answer) VALUES ({', '.join('?' for _ in CREATE_COLUMNS)}, ?, ?, ?, ?)",
    "forget_answer": f"DELETE FROM {_ANS} WHERE id = ?",
    "request": f"SELECT {', '.join(REQUEST_COLUMNS)} FROM {_REQ} WHERE id = ?",
    "answers": f"SELECT {', '.join(ANSWER_COLUMNS)} FROM {_ANS} WHERE request_id = ? ORDER BY id",
    "state": f"SELECT state FROM {_REQ} WHERE id = ?",
    # Compare-and-swap on version: an answer settles what it was judged against, or nothing.
    "answer": f"UPDATE {_REQ} SET version = ?, state = ?, settled_at = ?, outcome = ?, edits = ? "
    "WHERE id = ? AND version = ?",
    "store_answer": f"INSERT INTO {_ANS} ({', '.join(_STORED_ANSWER)}) "
    f"VALUES ({', '.join('?' for _ in _STORED_ANSWER)})",
    "settle": f"UPDATE {_REQ} SET state = ?, version = version + 1, settled_at = ?, outcome = ? "
    "WHERE id = ? AND state = ?",
    "escalate": f"UPDATE {_REQ} SET escalated = 1, version = version + 1 "
    "WHERE id = ? AND state = 'pending'",
    "heartbeat": f"UPDATE {_REQ} SET heartbeat_at = ? WHERE id = ? AND state = 'pending'",
    "link": f"UPDATE {_REQ} SET audit_id = ? WHERE id = ?",
    # Compare-and-swap on the owner: of two processes adopting a dead waiter's request, one wins.
    "adopt": f"UPDATE {_REQ} SET owner_host = ?, owner_pid = ?, owner_started = ?, "
    "heartbeat_at = ?, version = version + 1 WHERE id = ? AND owner_started = ? "
    "AND state IN ('pending', 'approved') AND audit_id IS NULL",
}

_RAW.update(FOLDED_STATEMENTS)  # requests kept in their action's record (``approval.folded``)

_WITHOUT_ANSWER = (
    f"SELECT {', '.join(c if c != 'answer' else 'NULL' for c in REQUEST_COLUMNS)} "
    f"FROM {_REQ} WHERE id = ?"
)


class BookConnection:
    """The driver connection behind one ``ApprovalBook``'s hot statements."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self.lock = threading.Lock()
        self._engine: Engine | None = None
        self._conn: Any = None
        self._cur: Any = None
        self._sqlite = False
        self._inline: bool | None = None  # the busy timeout the SQLite connection has now
        #: The store's request table has the ``answer`` column (``approval.migrate``): set by
        #: the book before its first transaction; without it ``request`` selects NULL there.
        self.answer_column = True
        self.sql: dict[str, str] = {}
        self._paramstyle = "qmark"

    def convert(self, text: str) -> str:
        """``text`` written with ``?`` in the paramstyle of the open connection's driver."""
        return _convert(text, self._paramstyle)

    @contextlib.contextmanager
    def transaction(self, *, write: bool, inline: bool) -> Iterator[Any]:
        """A cursor inside one transaction (``write``: SQLite's write lock taken first).

        ``inline`` (a call on the event loop's thread): never wait for another thread holding
        the connection, and wait at most 20 ms for SQLite's lock; either raises a "busy"
        ``AuditError`` that ``ApprovalBook.run`` retries on a worker thread.
        """
        store = self._store
        if store.in_memory:
            with store.read_lock(), self._memory_cursor() as cur:
                yield from self._run(cur, write, inline=False)
            return
        if not self.lock.acquire(blocking=not inline):
            raise AuditError("approval store busy: its connection is in use by another thread")
        try:
            cur = self._cursor(inline)
            yield from self._run(cur, write, inline)
        finally:
            self.lock.release()

    def _run(self, cur: Any, write: bool, inline: bool) -> Iterator[Any]:
        sqlite = self._sqlite
        try:
            if sqlite:
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield cur
            if sqlite:
                cur.execute("COMMIT")
            else:
                cur.connection.commit()
        except BaseException as exc:
            self._rollback(cur, drop=not _busy(exc))
            if isinstance(exc, self._driver_error()):
                url = self._store.safe_url
                raise AuditError(f"approval store at {url}: {_line(exc)}") from exc
            raise

    def _cursor(self, inline: bool) -> Any:
        engine = self._store.engine
        if self._conn is None or self._engine is not engine:
            self.close_connection()
            try:
                self._open(engine)
            except Exception as exc:
                self.close_connection()
                url = self._store.safe_url
                raise AuditError(f"approval store at {url}: {_line(exc)}") from exc
        if self._sqlite and self._inline is not inline:
            # Inline calls wait at most 20 ms for the lock (then a worker thread waits longer).
            timeout = 20 if inline else int(1000 * self._store.busy_timeout)
            self._cur.execute(f"PRAGMA busy_timeout={timeout}")
            self._inline = inline
        return self._cur

    def _open(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._paramstyle = engine.dialect.paramstyle
        self.sql = _prepared(self._paramstyle, self._sqlite, self.answer_column)
        self._conn = write_connection(engine)
        self._cur = self._conn.cursor()
        if self._sqlite:
            self._cur.execute("PRAGMA synchronous=NORMAL")
            self._inline = None

    @contextlib.contextmanager
    def _memory_cursor(self) -> Iterator[Any]:
        engine = self._store.engine
        if not self.sql:
            self._paramstyle = engine.dialect.paramstyle
            self.sql = _prepared(self._paramstyle, True, self.answer_column)
            self._sqlite = True
        conn = engine.raw_connection()
        try:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
        finally:
            conn.close()

    def _rollback(self, cur: Any, *, drop: bool) -> None:
        with contextlib.suppress(Exception):
            if self._sqlite:
                if cur.connection.in_transaction:
                    cur.execute("ROLLBACK")
            else:
                cur.connection.rollback()
        if drop and not self._store.in_memory:
            self.close_connection()

    def _driver_error(self) -> type[BaseException]:
        engine = self._engine or self._store.engine
        error: type[BaseException] = engine.dialect.loaded_dbapi.Error
        return error

    def close_connection(self) -> None:
        """Release the held connection (reopened on the next call)."""
        cur, conn = self._cur, self._conn
        self._cur = self._conn = self._engine = None
        self._inline = None
        for closing in (cur, conn):
            if closing is not None:
                with contextlib.suppress(Exception):
                    closing.close()

    def close(self) -> None:
        with self.lock:
            self.close_connection()


@functools.lru_cache(maxsize=8)
def prepared(paramstyle: str, sqlite: bool) -> dict[str, str]:
    """``_prepared``, shared (read-only) by every transaction of the audit writer that writes
    approval rows alongside a record (``approval.alongside``)."""
    return _prepared(paramstyle, sqlite)


def _prepared(paramstyle: str, sqlite: bool, answer_column: bool = True) -> dict[str, str]:
    """The statements in the driver's paramstyle. A stored answer's id is sealed into the
    action's audit record: SQLite gives it as ``lastrowid``, other databases by RETURNING.
    Without ``answer_column`` (an older store that could not be migrated) a request is read
    with NULL in its place, which is what every row of such a store holds."""
    raw = _RAW if answer_column else {**_RAW, "request": _WITHOUT_ANSWER}
    sql = {k: _convert(v, paramstyle) for k, v in raw.items()}
    if not sqlite:
        sql["store_answer"] += " RETURNING id"
    return sql


def _busy(exc: BaseException) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
