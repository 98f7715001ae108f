"""What one audit write is: the kinds of op, the op itself, and the SQL each driver runs.

Shared by the writer thread (``audit.writer``), the chain-extending step of a transaction
(``audit.batch``) and the callers that queue ops of their own (``limit_state``, approvals,
shippers, the hooks' pairing).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

from aegis.errors import AuditError
from aegis.runtime.audit.schema import INTENT_COLUMNS, RESULT_COLUMNS

INTENT, FINAL, RECORD, CURSOR = 0, 1, 2, 3
#: An intent decided inside the transaction: ``payload(cursor, statements)`` runs under the
#: write lock and returns ``(INTENT, intent payload)``, or ``None`` to write nothing
#: (``aegis.runtime.limit_state``: stateful policies count with the write-ahead record).
DECIDE = 4
#: A DECIDE op whose payload returns ``(RECORD, record payload)``: an outcome, so its batch is
#: committed as a final one (fsynced at full durability), though decided in the transaction.
DECIDE_RECORD = 5

_INSERT_COLUMNS = ("id", *INTENT_COLUMNS, *RESULT_COLUMNS, "prev_hash", "row_hash", "result_hash")
_INTENT_INSERT_COLUMNS = ("id", *INTENT_COLUMNS, "prev_hash", "row_hash", "owner")
_FINAL_SET = ", ".join(f"{c} = ?" for c in RESULT_COLUMNS)


#: The owner of a pending row that another process completes: ``owner_gone`` cannot judge it,
#: so opening a store never marks it ``interrupted`` (see audit_interrupted).
DETACHED_OWNER = "detached"

#: ``side(cursor, statements, audit_id)``: a caller's own write in the transaction of an INTENT,
#: FINAL or RECORD op, after the audit rows of its batch; raising rolls both back (the op fails).
SideWrite = Callable[[Any, "Statements", int], None]


class WriteOp:
    """One queued write. ``payload`` depends on ``kind``; ``value``/``error`` are the answer."""

    __slots__ = (
        "abandoned",
        "detached",
        "error",
        "future",
        "kind",
        "loop",
        "payload",
        "side",
        "value",
    )

    def __init__(self, kind: int, payload: Any) -> None:
        self.kind = kind
        self.payload = payload
        #: Called (on the caller's loop) with ``value`` when the op was written after its caller
        #: stopped waiting (cancelled): the write happens anyway, and someone must know.
        self.abandoned: Callable[[Any], None] | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self.future: asyncio.Future[Any] | concurrent.futures.Future[Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        #: An intent another process will complete: recorded with ``DETACHED_OWNER``.
        self.detached = False
        #: Written in the same transaction as this op (see ``SideWrite``).
        self.side: SideWrite | None = None


class Statements:
    """SQL for one driver, written once with ``?`` and converted to the driver's paramstyle."""

    def __init__(self, dialect_name: str, paramstyle: str) -> None:
        self.sqlite = dialect_name == "sqlite"
        self.postgres = dialect_name == "postgresql"
        self.paramstyle = paramstyle
        lock = "" if self.sqlite else " FOR UPDATE"
        cols = ", ".join(_INSERT_COLUMNS)
        marks = ", ".join("?" for _ in _INSERT_COLUMNS)
        intent_cols = ", ".join(_INTENT_INSERT_COLUMNS)
        intent_marks = ", ".join("?" for _ in _INTENT_INSERT_COLUMNS)
        raw = {
            "head": "SELECT last_id, last_hash, last_final FROM aegis_audit_head "
            f"WHERE id = 1{lock}",
            "set_head": "UPDATE aegis_audit_head SET last_id = ?, last_hash = ?, last_final = ? "
            "WHERE id = 1",
            "insert": f"INSERT INTO aegis_audit ({cols}) VALUES ({marks})",
            "insert_intent": f"INSERT INTO aegis_audit ({intent_cols}, result) "
            f"VALUES ({intent_marks}, 'pending')",
            "insert_params": "INSERT INTO aegis_audit_params (id, params) VALUES (?, ?)",
            "final": f"UPDATE aegis_audit SET {_FINAL_SET}, result_hash = ? "
            "WHERE id = ? AND result = 'pending'",
            "row": "SELECT row_hash, result FROM aegis_audit WHERE id = ?",
            "cursor_update": "UPDATE aegis_audit_sink_cursor SET final_seq = ?, scan_from = ?, "
            "updated_at = ? WHERE sink = ?",
            "cursor_insert": "INSERT INTO aegis_audit_sink_cursor "
            "(final_seq, scan_from, updated_at, sink) VALUES (?, ?, ?, ?)",
        }
        self.sql = {name: _convert(text, paramstyle) for name, text in raw.items()}

    def convert(self, sql: str) -> str:
        """``sql`` written with ``?`` in this driver's paramstyle (for a ``SideWrite``)."""
        return _convert(sql, self.paramstyle)


def _convert(sql: str, paramstyle: str) -> str:
    if paramstyle == "qmark":
        return sql
    if paramstyle in ("format", "pyformat"):
        return sql.replace("?", "%s")
    raise AuditError(f"unsupported database driver paramstyle {paramstyle!r}")


def one_line(exc: BaseException) -> str:
    """A database error as one line: the driver's own message, without SQLAlchemy's SQL echo
    and its "Background on this error at: https://sqlalche.me/..." link."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if isinstance(orig, BaseException) else str(exc)
    text = text.split("(Background on this error at:")[0].split("[SQL:")[0]
    text = " ".join(text.split())
    return f"{type(orig or exc).__name__}: {text}" if text else type(orig or exc).__name__


def audit_error(exc: BaseException) -> AuditError:
    err = AuditError(f"the audit store could not write: {one_line(exc)}")
    err.__cause__ = exc
    return err
