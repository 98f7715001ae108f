"""Feeding sinks from the store, so a sink can neither slow an action nor lose a record.

A sink is anything with ``emit``::

    class AuditSink(Protocol):
        def emit(self, records: Sequence[AuditRecord]) -> Awaitable[None] | None: ...

``emit`` receives committed *final* records (never 'pending' ones) in the order they became
final, in batches of up to 500. Returning (or the awaitable completing) means "taken"; raising
means "try this batch again later" (exponential backoff, 0.2 s doubling to 30 s). Delivery is at
least once: a crash between ``emit`` and saving the cursor re-sends that batch. Optional: a
``name`` attribute (the key of the sink's saved cursor; defaults to the class name, so give two
sinks of one class distinct names) and ``close()``, called when the store closes.

Each sink gets a shipper thread that reads rows after the sink's saved cursor (table
``aegis_audit_sink_cursor``), emits them, and saves the new cursor through the writer queue. The
writer wakes the shippers after each commit with final records; other processes' writes are
picked up by polling (``poll_interval``). On close each shipper ships what it can before the
store's ``close_timeout``; whatever is left goes out the next time the store opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Engine, and_, case, func, or_, select

from aegis.errors import AuditError
from aegis.runtime.audit.record import AuditRecord, now_iso
from aegis.runtime.audit.schema import audit_log, record_columns, record_source, sink_cursor
from aegis.runtime.audit.writer import CURSOR, GroupCommitWriter, WriteOp

log = logging.getLogger("aegis.audit.sinks")


@runtime_checkable
class AuditSink(Protocol):
    """Receives committed final audit records; see the module docstring for the contract."""

    def emit(self, records: Sequence[AuditRecord]) -> Awaitable[None] | None: ...


def build_sink(name: str, /, **options: Any) -> AuditSink:
    """A sink from the plugin registry: ``build_sink("jsonl", path="audit.jsonl")``."""
    from aegis.plugins import get_registry

    registration = get_registry().get("audit_sinks", name)
    if registration is None:
        known = ", ".join(get_registry().names("audit_sinks")) or "none"
        raise AuditError(f"unknown audit sink {name!r} (registered: {known})")
    try:
        sink = registration.obj(**options)
    except (TypeError, ValueError, OSError) as exc:
        raise AuditError(f"audit sink {name!r}: {exc}") from exc
    if not isinstance(sink, AuditSink):
        raise AuditError(f"audit sink {name!r} built {type(sink).__name__}, which has no emit()")
    return sink


#: What ``AuditStore(sinks=[...])`` accepts for each sink: an object with ``emit``, a registered
#: name (``"logging"``), or a name with keyword options (``("jsonl", {"path": "audit.jsonl"})``).
SinkSpec = AuditSink | str | tuple[str, Mapping[str, Any]]


def resolve_sinks(specs: Sequence[SinkSpec]) -> tuple[AuditSink, ...]:
    """Build and check every sink now, so a typo fails where it was written, not in a thread.

    Raises ``AuditError`` for an unknown name, options the sink rejects, something that is not
    a sink, or two sinks that would share one saved cursor (the same ``name``).
    """
    if isinstance(specs, str | bytes) or not isinstance(specs, Sequence):
        raise AuditError(
            f"sinks must be a list (e.g. sinks=[{specs!r}]), not {type(specs).__name__}"
        )
    sinks: list[AuditSink] = []
    for spec in specs:
        if isinstance(spec, str):
            sinks.append(build_sink(spec))
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
            name, options = spec
            if not isinstance(options, Mapping):
                raise AuditError(
                    f"audit sink {name!r}: options must be a mapping of keyword options "
                    f"(e.g. ({name!r}, {{'path': ...}})), not {type(options).__name__}"
                )
            sinks.append(build_sink(name, **options))
        elif not isinstance(spec, str | tuple) and isinstance(spec, AuditSink):
            sinks.append(spec)
        else:
            raise AuditError(
                f"{spec!r} is not an audit sink: give an object with emit(), a registered "
                "name such as 'logging', or (name, {options}) such as ('jsonl', {'path': ...})"
            )
    seen: set[str] = set()
    for sink in sinks:
        name = sink_name(sink)
        if name in seen:
            raise AuditError(
                f"two audit sinks are named {name!r}: each keeps its own saved cursor under its "
                "name, so give one of them another name= option"
            )
        seen.add(name)
    return tuple(sinks)


def sink_name(sink: AuditSink) -> str:
    name = getattr(sink, "name", None)
    return str(name) if name else type(sink).__name__


class Shipper:
    """One background thread moving committed records from the store into one sink."""

    def __init__(
        self,
        sink: AuditSink,
        engine: Engine,
        writer: GroupCommitWriter,
        *,
        read_lock: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        backoff: tuple[float, float] = (0.2, 30.0),
    ) -> None:
        self.sink = sink
        self.name = sink_name(sink)
        self._engine = engine
        self._writer = writer
        self._read_lock = read_lock
        self._batch = batch_size
        self._poll = poll_interval
        self._backoff = backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline = 0.0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.shipped = 0
        self.failures = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"aegis-audit-sink-{self.name}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, deadline: float) -> None:
        """Ship what can be shipped within ``deadline`` seconds, then stop."""
        self._deadline = time.monotonic() + max(deadline, 0.0)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(deadline, 0.0) + 5.0)
            self._thread = None

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            final_seq, scan_from = self._load_cursor()
            delay = self._backoff[0]
            while True:
                stopping = self._stop.is_set()
                if stopping and time.monotonic() >= self._deadline:
                    return
                try:
                    records, scan_from = self._fetch(final_seq, scan_from)
                except Exception as exc:
                    self._note_failure(f"reading the audit store: {exc}")
                    if not self._pause(delay, stopping):
                        return
                    delay = min(delay * 2, self._backoff[1])
                    continue
                if not records:
                    if stopping:
                        return
                    self._wake.wait(self._poll)
                    self._wake.clear()
                    continue
                try:
                    self._emit(records)
                except Exception as exc:
                    self._note_failure(f"{type(exc).__name__}: {exc}")
                    if not self._pause(delay, stopping):
                        return
                    delay = min(delay * 2, self._backoff[1])
                    continue
                delay = self._backoff[0]
                final_seq = records[-1].final_seq or final_seq
                self.shipped += len(records)
                self._save_cursor(final_seq, scan_from)
        except Exception:  # pragma: no cover - a bug here must not go unnoticed
            log.exception("audit sink %s stopped", self.name)
        finally:
            self._close_sink()

    def _pause(self, delay: float, stopping: bool) -> bool:
        """Back off before a retry; False when the close deadline leaves no time for one."""
        if stopping:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            return True
        self._stop.wait(delay)
        return True

    def _note_failure(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        log.warning("audit sink %s failed (will retry, nothing is lost): %s", self.name, message)

    def _emit(self, records: list[AuditRecord]) -> None:
        outcome = self.sink.emit(records)
        if inspect.isawaitable(outcome):
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(_await(outcome))

    def _close_sink(self) -> None:
        close = getattr(self.sink, "close", None)
        if callable(close):
            try:
                outcome = close()
                if inspect.isawaitable(outcome):
                    if self._loop is None:
                        self._loop = asyncio.new_event_loop()
                    self._loop.run_until_complete(_await(outcome))
            except Exception:
                log.warning("closing audit sink %s failed", self.name, exc_info=True)
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    # -- cursor and reads ----------------------------------------------------------------------

    def _load_cursor(self) -> tuple[int, int]:
        with self._read_lock(), self._engine.connect() as conn:
            row = conn.execute(
                select(sink_cursor.c.final_seq, sink_cursor.c.scan_from).where(
                    sink_cursor.c.sink == self.name
                )
            ).first()
        return (int(row[0]), int(row[1])) if row is not None else (0, 1)

    def _save_cursor(self, final_seq: int, scan_from: int) -> None:
        op = WriteOp(CURSOR, (final_seq, scan_from, now_iso(), self.name))
        try:
            self._writer.submit_nowait(op).result(timeout=30)
        except Exception as exc:  # the batch will be re-sent: at least once, never lost
            log.warning("could not save the cursor of audit sink %s: %s", self.name, exc)

    def _fetch(self, final_seq: int, scan_from: int) -> tuple[list[AuditRecord], int]:
        """Final records after ``final_seq``, oldest first, and the new ``scan_from``.

        Every row below ``scan_from`` is final and shipped, so the scan starts there (ids only
        grow) instead of needing an index on ``final_seq``.
        """
        c = audit_log.c
        with self._read_lock(), self._engine.connect() as conn:
            unshipped = or_(c.final_seq.is_(None), c.final_seq > final_seq)
            # One statement, one snapshot: a row committed in between cannot be skipped.
            low, top = conn.execute(
                select(func.min(case((unshipped, c.id))), func.max(c.id)).where(c.id >= scan_from)
            ).one()
            if low is None:
                return [], max(scan_from, int(top or 0) + 1)
            rows = conn.execute(
                select(*record_columns())
                .select_from(record_source())
                .where(and_(c.id >= low, c.final_seq > final_seq))
                .order_by(c.final_seq)
                .limit(self._batch)
            ).mappings()
            return [AuditRecord.from_mapping(r) for r in rows], int(low)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
