"""Group commit: many concurrent audit writes share one transaction and one fsync.

One writer thread owns a driver connection taken from the SQLAlchemy engine and drains a queue:
everything waiting when it wakes goes into one transaction, and each waiting event loop gets one
``call_soon_threadsafe`` per batch to resolve its futures. So 100 concurrent actions cost about
one fsync, not 100, and no caller is serialised behind another's fsync.

Durability per transaction (``durability="full"``): a batch holding only intents (``begin``)
commits without an fsync (SQLite ``synchronous=NORMAL`` in WAL mode; PostgreSQL ``SET LOCAL
synchronous_commit = off``), a batch holding any final record commits with one (``FULL`` /
``on``). WAL order makes that final fsync cover every intent written before it, so an intent is
durable no later than the outcome of the same action. ``durability="normal"`` never waits for
an fsync (a labelled faster mode: a power cut may lose the last commits, a crash of the process
does not).

Single-caller fast path: when the writer is idle and the calling task is the only task in its
event loop, the write runs right there, with no thread hop (a sequential agent pays for its
fsync and nothing else). With any other task around, the write is queued so it can be batched.

Measured (2-vCPU VM, SQLite 3.40 in WAL, fdatasync ~100-200 us and noisy; store alone, one
``begin`` + ``finish`` per action, medians of a few runs; ratios only within one run):

* sequential, full: ~300-370 us/action — two commits (intent ~30-60 us incl. statements, final
  with its fsync ~200 us); a lone ``record()`` (one commit) ~265-290 us, about what
  agent-aegis 1.0.0 needs for a whole ``run_one`` (~260-290 us in the same runs). So sequential
  full durability is *not* faster than the peer: the write-ahead intent costs one extra commit.
* sequential, ``durability="normal"``: ~130-200 us/action through the runtime.
* 100 tasks x 100 actions, full: 20-24k actions/s (store alone; peer ~3.7k/s), 100 ops per
  transaction, one fsync per batch of finals; through the runtime ~15k/s (6.5x the peer).

The chain head (last id, last hash, last final sequence) is read and written inside every
transaction under the database's write lock (SQLite ``BEGIN IMMEDIATE``, elsewhere ``SELECT ...
FOR UPDATE``), so several processes or replicas extend one chain and never fork it: that step is
``audit.batch``; what an op is and the SQL it runs, ``audit.ops``. This module is the thread,
the queue and the transaction around them.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from aegis.errors import AuditError
from aegis.runtime.audit.batch import apply_batch, holds_final

# What a write is lives in ``audit.ops``; these names are imported from here too, as before.
from aegis.runtime.audit.ops import CURSOR as CURSOR
from aegis.runtime.audit.ops import DECIDE as DECIDE
from aegis.runtime.audit.ops import DECIDE_RECORD as DECIDE_RECORD
from aegis.runtime.audit.ops import DETACHED_OWNER as DETACHED_OWNER
from aegis.runtime.audit.ops import FINAL as FINAL
from aegis.runtime.audit.ops import INTENT as INTENT
from aegis.runtime.audit.ops import RECORD as RECORD
from aegis.runtime.audit.ops import SideWrite as SideWrite
from aegis.runtime.audit.ops import Statements as Statements
from aegis.runtime.audit.ops import WriteOp as WriteOp
from aegis.runtime.audit.ops import _convert as _convert
from aegis.runtime.audit.ops import audit_error
from aegis.runtime.audit.ops import one_line as one_line

log = logging.getLogger("aegis.audit")


class GroupCommitWriter:
    """Owns the write connection and the writer thread. Thread-safe ``submit``."""

    def __init__(
        self,
        connect: Callable[[], Any],
        statements: Statements,
        *,
        full: bool,
        max_batch: int = 512,
        on_final: Callable[[], None] | None = None,
        owner: str | None = None,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self._owner = owner  # recorded on pending rows (see audit_interrupted)
        self._connect = connect
        self._st = statements
        self._full = full
        self._max_batch = max_batch
        self._on_final = on_final
        #: Called inside every write transaction before it commits; raising rolls it back
        #: (``audit_file.FileGuard.check``: the SQLite file is still the one opened).
        self._guard = guard
        self._queue: collections.deque[WriteOp] = collections.deque()
        self._mutex = threading.Lock()  # guards _queue, _sleeping, _closed/_stopping changes
        #: The writer sleeps by acquiring this lock, which is held while it is awake; whoever
        #: clears ``_sleeping`` (under ``_mutex``) releases it once. A plain lock instead of a
        #: ``threading.Condition``: ``Condition.notify`` is Python code, ~5% of the event-loop
        #: thread's time per action at c1 (py-spy), a lock release is one C call.
        self._wake = threading.Lock()
        self._sleeping = False  # the writer waits on _wake: only then is a wake-up needed
        self._conn_lock = threading.Lock()
        self._busy = False
        self._stopping = False
        self._closed = True
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._sync_full: bool | None = None
        self._cursor: Any = None
        self.inline = True
        #: ``"alone"``: write inline only when the calling task is alone in its loop (nothing
        #: could batch with it). ``"idle"``: whenever the writer is idle, for a loop that
        #: serves one caller at a time among helper tasks (a stdio proxy): no thread hop, at the
        #: price of blocking that loop for the commit.
        self.inline_when: str = "alone"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._conn = self._connect()
        self._closed = False
        self._stopping = False
        self._wake = threading.Lock()
        self._wake.acquire()  # held while the writer is awake
        self._sleeping = False
        self._thread = threading.Thread(target=self._run, name="aegis-audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write everything queued, then stop the thread and release the connection."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._wake_writer()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._conn_lock:
            conn, self._conn = self._conn, None
            if self._cursor is not None:
                _quietly(self._cursor.close)
                self._cursor = None
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pragma: no cover - closing a broken connection
                    log.debug("closing the audit write connection failed", exc_info=True)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connection_lock(self) -> threading.Lock:
        """Held while the write connection is in use (shared with readers of a memory DB)."""
        return self._conn_lock

    # -- submission ----------------------------------------------------------------------------

    async def submit(self, op: WriteOp) -> Any:
        """Write ``op``; returns its value once committed, or raises ``AuditError``."""
        if self._closed:
            raise AuditError("the audit store is closed")
        if (
            self.inline
            and not self._queue
            and not self._busy
            and self._conn_lock.acquire(blocking=False)
        ):
            try:
                if not self._queue and (self.inline_when == "idle" or _alone_in_loop()):
                    self._write([op])
                    if op.error is not None:
                        raise op.error
                    return op.value
            finally:
                self._conn_lock.release()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        op.future = fut
        op.loop = loop
        self._enqueue(op)
        return await fut

    def submit_nowait(self, op: WriteOp) -> concurrent.futures.Future[Any]:
        """Queue ``op`` from any thread; the returned future resolves after the commit."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        op.future = fut
        self._enqueue(op)
        return fut

    def _enqueue(self, op: WriteOp) -> None:
        with self._mutex:
            if self._closed and not self._stopping:
                raise AuditError("the audit store is closed")
            if self._thread is None:
                raise AuditError("the audit store is closed")
            self._queue.append(op)
            if self._sleeping:  # a busy writer takes the op with its next batch anyway
                self._wake_writer()

    def _wake_writer(self) -> None:
        """Under ``_mutex``, with the writer asleep: let its ``_wake.acquire()`` return."""
        if self._sleeping:
            self._sleeping = False
            self._wake.release()

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        queue = self._queue
        while True:
            self._mutex.acquire()
            while not queue and not self._stopping:
                self._sleeping = True
                self._mutex.release()
                self._wake.acquire()  # returns once _wake_writer released it
                self._mutex.acquire()
            try:
                if not queue:
                    return
                n = min(len(queue), self._max_batch)
                batch = [queue.popleft() for _ in range(n)]
                self._busy = True
            finally:
                self._mutex.release()
            try:
                with self._conn_lock:
                    self._write(batch)
            finally:
                self._busy = False
            _dispatch(batch)

    def _write(self, ops: Sequence[WriteOp]) -> None:
        """Commit ``ops`` in one transaction; on failure retry them one by one."""
        final = holds_final(ops)
        try:
            self._transaction(ops, final)
        except BaseException as exc:
            # On the writer thread even Ctrl-C or SystemExit (from a DECIDE callback) is that
            # one op's failure, or the thread would end; inline it is the caller's own.
            if not isinstance(exc, Exception) and threading.current_thread() is not self._thread:
                raise
            if len(ops) > 1:
                for op in ops:
                    self._write([op])
                return
            ops[0].error = exc if isinstance(exc, AuditError) else audit_error(exc)
            return
        if final and self._on_final is not None:
            self._on_final()

    def _transaction(self, ops: Sequence[WriteOp], final: bool) -> None:
        """``final``: the batch holds an outcome (an fsynced commit at full durability)."""
        conn = self._conn
        if conn is None:
            raise AuditError("the audit store is closed")
        st = self._st
        full = self._full and final
        cur = self._cursor
        if cur is None:
            cur = self._cursor = conn.cursor()
        try:
            if st.sqlite:
                if full is not self._sync_full:
                    cur.execute("PRAGMA synchronous=FULL" if full else "PRAGMA synchronous=NORMAL")
                    self._sync_full = full
                cur.execute("BEGIN IMMEDIATE")
                if self._guard is not None:
                    self._guard()
            elif st.postgres and not full:
                cur.execute("SET LOCAL synchronous_commit TO off")
            apply_batch(cur, ops, st, self._owner)
            if st.sqlite:
                cur.execute("COMMIT")
            else:
                conn.commit()
        except BaseException:
            # Leave no half transaction behind (an aborted PostgreSQL transaction would poison
            # every later one), and do not trust this cursor with the next batch.
            if st.sqlite:
                _quietly(cur.execute, "ROLLBACK")
            else:
                _quietly(conn.rollback)
            _quietly(cur.close)
            self._cursor = None
            raise


def _alone_in_loop() -> bool:
    """True when the calling task is the only task alive (so nothing could batch with it).

    Uses the O(1) size of asyncio's registry of live tasks where CPython has one (it counts
    tasks of every loop, which can only make the answer "no" more often), else ``all_tasks``.
    """
    if _TASK_REGISTRY is not None:
        return len(_TASK_REGISTRY) <= 1
    return len(asyncio.all_tasks()) <= 1


_TASK_REGISTRY: Any = getattr(asyncio.tasks, "_all_tasks", None)
if not isinstance(_TASK_REGISTRY, weakref.WeakSet):
    _TASK_REGISTRY = None


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        log.debug("rollback after a failed commit failed too", exc_info=True)


def _dispatch(batch: Sequence[WriteOp]) -> None:
    """Hand results back: one call_soon_threadsafe per event loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[WriteOp]] = {}
    for op in batch:
        fut = op.future
        if op.loop is not None:
            by_loop.setdefault(op.loop, []).append(op)
        elif isinstance(fut, concurrent.futures.Future):
            if op.error is not None:
                fut.set_exception(op.error)
            else:
                fut.set_result(op.value)
    for loop, ops in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, ops)
        except RuntimeError:  # the loop is closed; nobody is waiting any more
            log.warning("audit results for %d writes had no event loop to return to", len(ops))


def _resolve(ops: Sequence[WriteOp]) -> None:
    for op in ops:
        fut = op.future
        if fut is None or fut.done():
            if fut is not None and fut.cancelled() and op.abandoned and op.error is None:
                op.abandoned(op.value)
            continue
        if op.error is not None:
            fut.set_exception(op.error)
        else:
            fut.set_result(op.value)
