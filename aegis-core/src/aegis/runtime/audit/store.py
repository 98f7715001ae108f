"""The audit store: one row per action, hash-chained, written before the action runs.

::

    async with AuditStore("sqlite:///aegis_audit.db") as store:     # any SQLAlchemy URL
        audit_id = await store.begin(action, decision, approval)     # row says 'pending'
        ...                                                           # the executor runs
        await store.finish(audit_id, result)                          # durable before return
        await store.record(blocked_result)                            # nothing ran: one shot
        store.query(session="s1", result="failed", limit=20)          # sync, for the CLI
        store.verify().ok                                             # tamper check

Contract the runtime relies on: ``begin`` has *written* the row when it returns and raises
``AuditError`` when it cannot (so the action does not run); ``finish`` and ``record`` return
only once the row is committed and, at ``durability="full"``, fsynced. Concurrent calls share
transactions (``audit.writer``); params are redacted before anything is stored or hashed
(``aegis.core.redact``); sinks are fed from committed rows by background shippers
(``audit.ship``), so they can neither slow nor lose an action's record. The read side
(``query``, ``count``, ``stats``, ``get``, ``verify``) is ``AuditReader`` in ``audit.reader``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.redact import DEFAULT_REDACTOR, Redactor
from aegis.core.result import Result, ResultStatus
from aegis.errors import AuditError
from aegis.runtime.approval.alongside import unwritten as unwritten_rows
from aegis.runtime.audit.autocheckpoint import Checkpointer, CheckpointSchedule
from aegis.runtime.audit.chain import VerifyReport, canonical, intent_json
from aegis.runtime.audit.file import FileGuard
from aegis.runtime.audit.interrupted import current_owner, mark_interrupted
from aegis.runtime.audit.migrate import ensure_columns
from aegis.runtime.audit.opening import (
    create_tables,
    ensure_head,
    file_guard,
    write_connection,
)
from aegis.runtime.audit.query import AuditFilter as AuditFilter  # (re-exported, as before)
from aegis.runtime.audit.query import Order as Order
from aegis.runtime.audit.query import RuleStats
from aegis.runtime.audit.query import Since as Since
from aegis.runtime.audit.reader import AuditReader, Durability
from aegis.runtime.audit.record import (
    AuditRecord,
    derive_decision,
    intent_payload,
    intent_values,
    now_iso,
    outcome_values,
)
from aegis.runtime.audit.ship import AuditSink, Shipper, SinkSpec, resolve_sinks
from aegis.runtime.audit.url import audit_url
from aegis.runtime.audit.writer import (
    DECIDE,
    DECIDE_RECORD,
    FINAL,
    INTENT,
    RECORD,
    GroupCommitWriter,
    SideWrite,
    Statements,
    WriteOp,
    one_line,
)

if TYPE_CHECKING:
    from aegis.runtime.approval.store import ApprovalBook
    from aegis.runtime.shadow import ShadowVerdict

__all__ = [
    "AuditLogger",
    "AuditRecord",
    "AuditSink",
    "AuditStore",
    "RuleStats",
    "SinkSpec",
    "VerifyReport",
]

log = logging.getLogger("aegis.audit")


class AuditStore(AuditReader):
    """Hash-chained audit trail on any SQLAlchemy database (SQLite file by default).

    ``durability="full"`` (default): every final record is fsynced before the call returns.
    ``durability="normal"``: commits without waiting for the disk — faster, and a power cut may
    lose the last moments (a process crash does not). ``redactor=None`` means the default
    redaction; pass ``Redactor.disabled()`` to store params verbatim. ``sinks`` receive every
    final record after it is committed (see ``AuditSink``); each is a sink object, a registered
    name (``"logging"``) or a name with options (``("jsonl", {"path": "audit.jsonl"})``), all
    built and checked here, so an unknown name or a bad option is an ``AuditError`` at once.
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        durability: Durability = "full",
        redactor: Redactor | None = None,
        sinks: Sequence[SinkSpec] = (),
        busy_timeout: float = 10.0,
        close_timeout: float = 5.0,
        checkpoints: CheckpointSchedule | None = None,
    ) -> None:
        if durability not in ("full", "normal"):
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        self.url = audit_url(url)
        self.durability: Durability = durability
        self.redactor = redactor if redactor is not None else DEFAULT_REDACTOR
        self.sinks: tuple[AuditSink, ...] = resolve_sinks(sinks)
        self.busy_timeout = busy_timeout
        self.close_timeout = close_timeout
        self._engine: Engine | None = None
        self._memory = False
        self._writer: GroupCommitWriter | None = None
        self._guard: FileGuard | None = None
        self._shippers: list[Shipper] = []
        self._open_hashes: dict[int, str] = {}
        self._lifecycle = threading.Lock()
        self._approvals: ApprovalBook | None = None
        self.checkpoints = checkpoints
        self._checkpointer: Checkpointer | None = None
        #: Ids this process closed as 'interrupted' when it opened the store.
        self.interrupted: list[int] = []
        #: When a write may skip the writer thread (see ``GroupCommitWriter.inline_when``).
        self.inline_when: Literal["alone", "idle"] = "alone"

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Create tables if needed and start the writer (and sink shippers). Idempotent."""
        if self._writer is not None and not self._writer.closed:
            return
        await asyncio.to_thread(self.open_sync)

    async def close(self) -> None:
        """Write everything queued, ship what the sinks can take, stop threads. Idempotent."""
        await asyncio.to_thread(self.close_sync)

    async def __aenter__(self) -> AuditStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def open_sync(self) -> None:
        with self._lifecycle:
            if self._writer is not None and not self._writer.closed:
                return
            engine = self._get_engine()
            guard = file_guard(engine)
            try:
                create_tables(engine)
                ensure_head(engine)
                ensure_columns(engine)
                checkpointer = self._make_checkpointer(engine)  # a bad key fails here, first
                if guard is not None:
                    guard.arm()  # the file the engine just opened (and the writer will)
                writer = GroupCommitWriter(
                    lambda: write_connection(engine),
                    Statements(engine.dialect.name, engine.dialect.paramstyle),
                    full=self.durability == "full",
                    on_final=self._wake_shippers,
                    owner=current_owner(),
                    guard=guard.check if guard is not None else None,
                )
                writer.inline_when = self.inline_when
                writer.start()
            except (SQLAlchemyError, OSError) as exc:
                if guard is not None:
                    guard.close()
                raise AuditError(
                    f"cannot open the audit store at {self._safe_url()}: {one_line(exc)}"
                ) from exc
            self._writer = writer
            self._guard = guard
            self._start_evidence(engine, writer, checkpointer)  # before sinks: they ship it
            self._shippers = [
                Shipper(sink, engine, writer, read_lock=self._read_lock) for sink in self.sinks
            ]
            for shipper in self._shippers:
                shipper.start()
        # Requests whose waiting process died are settled now, before anyone can answer them.
        self.approvals.reap()

    def close_sync(self) -> None:
        with self._lifecycle:
            if self._approvals is not None:
                self._approvals.close()  # its pending links, its connection
            writer = self._writer
            if writer is None or writer.closed:
                return
            for shipper in self._shippers:
                shipper.stop(deadline=self.close_timeout)
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            writer.stop()
            if self._guard is not None:
                self._guard.close()
                self._guard = None
            self._shippers = []
            self._open_hashes.clear()
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None and not self._writer.closed

    @property
    def approvals(self) -> ApprovalBook:
        """The approval requests kept in this database (see ``aegis.runtime.approval.store``)."""
        book = self._approvals
        if book is None:
            from aegis.runtime.approval.store import ApprovalBook

            book = self._approvals = ApprovalBook(self)
        return book

    # -- the write path ------------------------------------------------------------------------

    async def begin(
        self,
        action: Action,
        decision: PolicyDecision | None,
        approval: ApprovalDecision | None = None,
        *,
        parent_id: int | None = None,
        detached: bool = False,
        shadow: ShadowVerdict | None = None,
        side_write: SideWrite | None = None,
    ) -> int:
        """Write the 'pending' row for an action about to run; returns its id.

        ``shadow``: what the runtime's shadow policy decided (hashed with the intent).

        ``detached``: another process will complete the row (a coding-agent hook, a server's
        authorise-then-report caller), so the row names no owner process and opening a store
        never marks it ``interrupted`` when this process exits; ``aegis audit recover
        --older-than`` closes it if nobody ever reports.

        ``side_write(cursor, statements, audit_id)`` runs in the transaction that writes the row
        (a caller's row that must exist exactly when this one does, such as the hooks' pairing
        of a tool call with its record): both are committed, or neither.

        Raises ``AuditError`` when the row cannot be written: the caller must not run the action.
        If the caller is cancelled while the row is being written, the row is still written and
        then closed as not run (the action cannot run: its caller is gone).
        """
        redactor = self.redactor

        def values() -> tuple[Any, ...]:
            label = derive_decision(decision, approval)
            return intent_values(
                action, decision, approval, label, parent_id, redactor, now_iso(), shadow
            )

        rows = unwritten_rows(approval)
        try:
            if rows is None or rows.seal_ahead():
                op = WriteOp(INTENT, intent_payload(values()))
            else:  # built in the transaction, once the rows it seals are written
                op = WriteOp(DECIDE, lambda _cur, _st: (INTENT, intent_payload(values())))
            op.detached = detached
            op.side = side_write
        except Exception as exc:  # a value we cannot store must not let the action run
            raise AuditError(f"cannot build the audit record: {exc}") from exc
        written = await self.write_ahead(op, action, decision, approval)
        assert written is not None  # an INTENT op always writes its row
        return written[0]

    async def write_ahead(
        self,
        op: WriteOp,
        action: Action,
        decision: PolicyDecision | None,
        approval: ApprovalDecision | None,
        *,
        if_not_written: Callable[[], None] | None = None,
    ) -> tuple[int, str] | None:
        """Submit a write-ahead op (INTENT, or DECIDE: ``limit_state``); returns the row's
        (id, hash), or None when a DECIDE op wrote nothing. An approval whose request is
        written with its record (``approval.alongside``) has its rows written in the same
        transaction: ``op`` is then a DECIDE op.

        If our task is cancelled while the op is in the writer, the row is still written and
        then closed as not run (the action cannot run: its caller is gone); a DECIDE op that
        wrote nothing calls ``if_not_written`` instead, to record the stop.
        """
        writer = self._live_writer()
        rows = unwritten_rows(approval)
        if rows is not None:
            rows.attach(op)
        try:
            written = await writer.submit(op)
        except asyncio.CancelledError:
            close = functools.partial(
                self._close_abandoned, action, decision, approval, if_not_written
            )
            fut = op.future
            if fut is not None and fut.done() and not fut.cancelled():
                if fut.exception() is None:  # written, but our task was cancelled anyway
                    close(fut.result())
            else:
                op.abandoned = close  # the writer calls it once the row is written
            raise
        if written is None:
            return None
        if rows is not None:
            rows.committed = True
        audit_id, row_hash = written
        self._open_hashes[audit_id] = row_hash
        return int(audit_id), row_hash

    def _close_abandoned(
        self,
        action: Action,
        decision: PolicyDecision | None,
        approval: ApprovalDecision | None,
        if_not_written: Callable[[], None] | None,
        written: tuple[int, str] | None,
    ) -> None:
        """Finish a row whose write-ahead was cancelled: the action never ran."""
        if written is None:
            if if_not_written is not None:
                if_not_written()
            return
        audit_id = written[0]
        result = Result(
            action,
            ResultStatus.BLOCKED,
            decision=decision,
            approval=approval,
            reason="cancelled while its audit record was being written; the action did not run",
        )
        try:
            rest = outcome_values(result, self.redactor, now_iso())
            writer = self._live_writer()
            writer.submit_nowait(WriteOp(FINAL, (audit_id, written[1], rest, canonical(rest))))
        except Exception:
            log.exception("could not close audit record %s of a cancelled action", audit_id)

    async def finish(
        self, audit_id: int, result: Result, *, side_write: SideWrite | None = None
    ) -> None:
        """Store the outcome of a begun action; committed (and fsynced at full) on return.

        ``side_write``: as for ``begin``, in the transaction that stores the outcome.
        """
        writer = self._live_writer()
        known = self._open_hashes.pop(audit_id, None)
        try:
            rest = outcome_values(result, self.redactor, now_iso())
            op = WriteOp(FINAL, (audit_id, known, rest, canonical(rest)))
            op.side = side_write
            await writer.submit(op)
        except BaseException:
            if known is not None:
                self._open_hashes[audit_id] = known
            raise

    async def record(
        self,
        result: Result,
        *,
        parent_id: int | None = None,
        dry_run: bool | None = None,
        shadow: ShadowVerdict | None = None,
    ) -> int:
        """One-shot record for an outcome where nothing executed; returns its id.

        ``result.decision`` / ``result.approval`` say what was decided. ``dry_run`` labels the
        decision ``dry_run`` (without it, a skipped result whose reason starts "dry run" is).
        """
        writer = self._live_writer()
        redactor = self.redactor

        def payload() -> tuple[Any, ...]:
            label = derive_decision(
                result.decision, result.approval, result.status, result.reason, dry_run=dry_run
            )
            stamp = now_iso()
            values = intent_values(
                result.action,
                result.decision,
                result.approval,
                label,
                parent_id,
                redactor,
                stamp,
                shadow,
            )
            rest = outcome_values(result, redactor, stamp)
            return (intent_json(values), values, rest, canonical(rest))

        rows = unwritten_rows(result.approval)
        try:
            if rows is None or rows.seal_ahead():
                op = WriteOp(RECORD, payload())
            else:  # built in the transaction, once the rows it seals are written
                op = WriteOp(DECIDE_RECORD, lambda _cur, _st: (RECORD, payload()))
            if rows is not None:
                rows.attach(op)
        except Exception as exc:
            raise AuditError(f"cannot build the audit record: {exc}") from exc
        audit_id, _ = await writer.submit(op)
        if rows is not None:
            rows.committed = True
        return int(audit_id)

    def _live_writer(self) -> GroupCommitWriter:
        writer = self._writer
        if writer is None or writer.closed:
            raise AuditError(
                "the audit store is not open (use 'async with AuditStore(...)' or await open())"
            )
        return writer

    def _wake_shippers(self) -> None:
        for shipper in self._shippers:
            shipper.wake()
        if self._checkpointer is not None:
            self._checkpointer.wake()

    def _make_checkpointer(self, engine: Engine) -> Checkpointer | None:
        if self.checkpoints is None:
            return None
        return Checkpointer(self.checkpoints, engine, read_lock=self._read_lock)

    def _start_evidence(
        self, engine: Engine, writer: GroupCommitWriter, checkpointer: Checkpointer | None
    ) -> None:
        """Close rows dead processes left pending; start the checkpoint thread if configured."""
        try:
            self.interrupted = mark_interrupted(engine, writer)
        except Exception:  # never a reason to refuse the store: the rows stay pending
            log.exception("could not check the audit store for interrupted records")
        if checkpointer is not None:
            self._checkpointer = checkpointer
            checkpointer.start()

    def recover(self, *, older_than: dt.timedelta | None = None) -> list[int]:
        """Mark pending rows of dead owners 'interrupted' now (``aegis audit recover``).

        ``older_than`` also closes rows whose owner cannot be checked from this host (another
        machine, or a store from before owners were recorded) that are at least that old.
        """
        return mark_interrupted(self._get_engine(), self._live_writer(), older_than=older_than)

    @property
    def checkpointer(self) -> Checkpointer | None:
        return self._checkpointer

    # -- plumbing ------------------------------------------------------------------------------

    def _read_lock(self) -> contextlib.AbstractContextManager[Any]:
        # An in-memory SQLite database is one connection shared with the writer.
        if self._memory and self._writer is not None:
            return self._writer.connection_lock
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        return f"AuditStore({self._safe_url()!r}, durability={self.durability!r})"


# The original README's name, importable from where it was (``aegis.runtime.audit``); it needs
# AuditStore defined first.
from aegis.runtime.audit.logger import AuditLogger  # noqa: E402
