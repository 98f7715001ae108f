"""Approval requests as rows in the audit database, answerable from any process.

A request is written *before* anyone is asked, so a crash leaves a trace and another process
(``aegis approvals``, a server replica, a channel's callback) can answer it. Every answer is
stored, accepted or not, with who gave it, through which channel and why it was refused.

State machine (a request leaves ``pending`` exactly once; ``approved`` may later become
``superseded`` when the policy changed and a fresh request replaced it)::

    pending -> approved | denied | expired | cancelled | abandoned
    approved -> superseded

Concurrency: every change is a compare-and-swap on ``version``, so two answers arriving at once
(two processes, two replicas) cannot both settle a request, and a quorum is counted on one
consistent view. The rules for accepting an answer are in ``aegis.runtime.approval_rules``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import SQLAlchemyError

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.errors import ApprovalError, AuditError
from aegis.runtime.approval_record import (
    ABANDONED,
    APPROVED,
    CANCELLED,
    DENIED,
    EXPIRED,
    PENDING,
    STATES,
    SUPERSEDED,
    AnswerOutcome,
    AnswerRecord,
    ApprovalRequest,
)
from aegis.runtime.approval_record import request_from_row as _request
from aegis.runtime.approval_rows import (
    HOST,
    OWNER,
    Attempt,
    answers_of,
    load,
    new_request,
    rule,
    snapshot,
    store_answer,
)
from aegis.runtime.approval_rules import judge
from aegis.runtime.approval_schema import metadata, requests, secret_table
from aegis.runtime.approval_sql import CREATE_COLUMNS, REQUEST_COLUMNS, BookConnection
from aegis.runtime.audit_interrupted import owner_gone

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore

__all__ = [
    "ABANDONED",
    "APPROVED",
    "CANCELLED",
    "DENIED",
    "EXPIRED",
    "PENDING",
    "STATES",
    "SUPERSEDED",
    "AnswerOutcome",
    "AnswerRecord",
    "ApprovalBook",
    "ApprovalRequest",
]

#: A waiting process refreshes its requests this often; one silent for ``STALE_AFTER`` on
#: another host is presumed dead (on this host the process table says so at once).
HEARTBEAT_EVERY = 5.0
STALE_AFTER = 60.0


_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("aegis_inline", default=False)
_T = TypeVar("_T")
log = logging.getLogger("aegis.approvals")


class ApprovalBook:
    """The approval requests of one audit database. Obtained as ``AuditStore.approvals``."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._secret: bytes | None = None
        self._ready = False
        self._raw = BookConnection(store)
        #: (request id, audit id) links not written yet (see ``defer_link``).
        self._links: list[tuple[str, int]] = []
        self._links_lock = threading.Lock()
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # a flush is due on it

    # -- plumbing --------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create the tables once (another thread or process may be doing it too: retried)."""
        if not self._ready:
            from aegis.runtime.audit_open import create_tables

            try:
                create_tables(self._store.engine, tables=metadata)
            except SQLAlchemyError as exc:
                url = self._store.safe_url
                raise AuditError(f"approval store at {url}: {_one_line(exc)}") from exc
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
            if self._links:
                self._write_links(cur, sql)
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

    def close(self) -> None:
        """Write the links still pending and release the held connection (the store closes)."""
        try:
            self.flush_links()
        except AuditError:
            log.exception("could not link %d approval requests to their records", len(self._links))
        self._raw.close()

    def _key(self) -> bytes:
        """The per-store secret behind callback tokens (made on first use, shared by all)."""
        if self._secret is None:
            found = self._read_secret()
            if found is None:
                try:
                    with self._tx() as conn:
                        conn.execute(
                            insert(secret_table).values(id=1, secret=secrets.token_hex(32))
                        )
                except AuditError:  # another process created it at the same moment
                    pass
                found = self._read_secret()
            if found is None:
                raise AuditError("approval store: no token secret could be created")
            self._secret = bytes.fromhex(found)
        return self._secret

    def _read_secret(self) -> str | None:
        with self._tx() as conn:
            row = conn.execute(select(secret_table.c.secret)).first()
        return None if row is None else str(row[0])

    def token(self, request: ApprovalRequest | str, digest: str | None = None) -> str:
        """The opaque callback token of a request: id plus a MAC of id and digest."""
        if isinstance(request, ApprovalRequest):
            rid, digest = request.id, request.digest
        else:
            rid = request
        if digest is None:
            digest = self.get(rid).digest
        mac = hmac.new(self._key(), f"{rid}|{digest}".encode(), hashlib.sha256).hexdigest()
        return f"{rid}.{mac[:32]}"

    def _from_token(self, token: str) -> tuple[str | None, str]:
        """(request id, "") for a valid token, (None, why) otherwise."""
        rid, _, mac = token.partition(".")
        if not rid or not mac:
            return None, "not a request token"
        row = self._row(rid)
        if row is None:
            return None, "token names no request"
        expected = self.token(rid, row["digest"]).partition(".")[2]
        if not hmac.compare_digest(mac, expected):
            return None, "token does not match the request and its action"
        return rid, ""

    # -- writing ---------------------------------------------------------------------------

    def create(
        self,
        action: Action,
        decision: PolicyDecision,
        *,
        window: float,
        channels: Sequence[str],
        params_view: Mapping[str, Any],
        replaces: str | None = None,
    ) -> ApprovalRequest:
        """Store a new pending request; it exists before any channel is told about it."""
        values, request = new_request(action, decision, window, channels, params_view, replaces)
        with self._write() as (cur, sql):
            cur.execute(sql["create"], [values[c] for c in CREATE_COLUMNS])
        return request

    def create_answered(
        self,
        action: Action,
        decision: PolicyDecision,
        *,
        window: float,
        channel: str,
        params_view: Mapping[str, Any],
        responder: str,
        verdict: str,
        reason: str | None = None,
        replaces: str | None = None,
    ) -> tuple[ApprovalRequest, AnswerOutcome]:
        """Store a new request and an answer nobody had to be asked for, in one transaction.

        For the built-in ``auto`` handler: its answer is fixed before the request exists, so no
        moment needs a pending request that someone else could see and answer. The answer is
        judged (``judge``) on the request exactly as written, and stored, accepted or not; one
        that does not settle the request leaves it pending, as ``respond`` would.
        """
        values, request = new_request(action, decision, window, [channel], params_view, replaces)
        identity = f"{channel}:{responder}"
        attempt = Attempt(channel, identity, verdict, reason, None, None)
        ruling = judge(request, identity, verdict, reason, None, None, time.time())
        after = request
        if ruling.new_state is not None:  # the row is written as the ruling leaves it
            values["version"], values["state"] = 2, ruling.new_state
            settled_at = outcome = None
            if ruling.new_state != PENDING:
                settled_at, outcome = time.time(), ruling.message
        with self._write() as (cur, sql):
            if ruling.new_state is None:
                cur.execute(sql["create"], [values[c] for c in CREATE_COLUMNS])
            else:
                row = [values[c] for c in CREATE_COLUMNS]
                cur.execute(sql["create_settled"], [*row, settled_at, outcome])
            answer = store_answer(cur, sql, request.id, attempt, ruling.accepted, ruling.message)
        if ruling.new_state is not None:
            after = snapshot(
                values,
                request.requirements,
                request.channels,
                request.params,
                settled_at=settled_at,
                outcome=outcome,
                answers=(answer,),
            )
        state = ruling.new_state or PENDING
        return request, AnswerOutcome(ruling.accepted, state, ruling.message, request.id, after)

    def respond(
        self,
        ref: str,
        *,
        channel: str,
        responder: str,
        verdict: str,
        reason: str | None = None,
        edits: Mapping[str, Any] | None = None,
        proof: str | None = None,
        digest: str | None = None,
        allow_prefix: bool = False,
        refused: str | None = None,
    ) -> AnswerOutcome:
        """Record an answer and settle the request if it decides it. Never raises for a bad one.

        ``ref`` is a request id, a callback token, or (``allow_prefix``, for people typing ids)
        a unique id prefix. ``responder`` is the identity *within* ``channel``; the identity
        checked against the rule's allow list is ``channel:responder``. ``digest``, when
        given, must be the digest of the action the responder saw. ``refused`` records an
        attempt the channel could not verify (an e-mail whose sender failed DKIM): stored, never
        accepted, the request left as it was.

        The answer, the ruling and the request's new state are written in one transaction
        under the database's write lock, so the ruling is made on the state it changes.
        """
        identity = f"{channel}:{responder}"
        edits_json = None if edits is None else json.dumps(dict(edits), ensure_ascii=False)
        attempt = Attempt(channel, identity, verdict, reason, edits_json, proof)
        rid: str | None
        if isinstance(ref, str) and ref and "." not in ref and not allow_prefix:
            rid, problem = ref, f"no approval request {ref!r}"  # checked in the transaction
        else:
            rid, problem = self._resolve(ref, allow_prefix)
        for _attempt in range(20):
            with self._write() as (cur, sql):
                row = None if rid is None else load(cur, sql, rid)
                if row is None:
                    note = problem or "no such request"
                    store_answer(cur, sql, rid, attempt, False, note)
                    return AnswerOutcome(False, "", note, rid)
                assert rid is not None
                request = _request(row, answers_of(cur, sql, rid))
                ruled = rule(cur, sql, request, row["version"], attempt, edits, digest, refused)
                if ruled is not None:
                    return ruled
                # someone else changed it between our read and write: re-judge
        return AnswerOutcome(False, "", "the request kept changing; try again", rid)

    def settle(self, rid: str, state: str, outcome: str, *, only_from: str = PENDING) -> bool:
        """Move a request from ``only_from`` to ``state``; False if it was not in ``only_from``."""
        with self._write() as (cur, sql):
            cur.execute(sql["settle"], (state, time.time(), outcome, rid, only_from))
            return bool(cur.rowcount == 1)

    def escalate(self, rid: str) -> bool:
        with self._write() as (cur, sql):
            cur.execute(sql["escalate"], (rid,))
            return bool(cur.rowcount == 1)

    def heartbeat(self, rids: Sequence[str]) -> None:
        if not rids:
            return
        now = time.time()
        with self._write() as (cur, sql):
            cur.executemany(sql["heartbeat"], [(now, rid) for rid in rids])

    def adopt(self, rid: str, *, previous_owner: str) -> ApprovalRequest | None:
        """Make this process the waiter of a request whose waiter died (``previous_owner``, its
        ``owner_started``), so ``reap`` leaves it alone and this process can resume the wait
        (``approval_flow.resuming``). Only a request still pending, or approved but not yet
        acted on (no audit record linked), can be adopted; one compare-and-swap on the owner,
        so of two adopters exactly one wins. None when it cannot be adopted."""
        now = time.time()
        with self._write() as (cur, sql):  # this process's pending links are written first
            cur.execute(sql["adopt"], (HOST, os.getpid(), OWNER, now, rid, previous_owner))
            if cur.rowcount != 1:
                return None
            row = load(cur, sql, rid)
            return None if row is None else _request(row, answers_of(cur, sql, rid))

    def link_audit(self, rid: str, audit_id: int) -> None:
        """Point a request at the audit record of the action it approved, now."""
        with self._write() as (cur, sql):
            cur.execute(sql["link"], (audit_id, rid))

    def defer_link(self, rid: str, audit_id: int) -> None:
        """``link_audit`` without a commit of its own: written in this process's next book
        write (usually the next request), by any read of requests here, at the latest about a
        second later, or when the store closes.

        The link is a pointer for people reading a request (the action's record and the
        request are each complete without it), so it need not cost every approved action a
        transaction of its own.
        """
        with self._links_lock:
            self._links.append((rid, audit_id))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_links()
            return
        if self._flush_loop is not loop:  # one timer per loop and second, not one per link
            self._flush_loop = loop
            loop.call_later(1.0, self._flush_later, loop)

    def _flush_later(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_loop = None
        if not self._links:
            return
        if self._inline_ok():
            token = _INLINE.set(True)
            try:
                self.flush_links()
                return
            except AuditError:
                pass  # busy: a worker thread waits for it
            finally:
                _INLINE.reset(token)
        future = loop.run_in_executor(None, self.flush_links)
        future.add_done_callback(_log_link_failure)

    @property
    def links_pending(self) -> bool:
        """Whether ``defer_link`` holds links not written yet."""
        return bool(self._links)

    def flush_links(self) -> None:
        """Write every pending ``defer_link`` now."""
        if self._links:
            with self._write():
                pass  # _write writes them first

    def _write_links(self, cur: Any, sql: dict[str, str]) -> None:
        with self._links_lock:
            links, self._links = self._links, []
        try:
            cur.executemany(sql["link"], [(aid, rid) for rid, aid in links])
        except BaseException:
            with self._links_lock:
                self._links[:0] = links  # rolled back with the transaction: keep them
            raise

    def reap(self, now: float | None = None) -> list[tuple[str, str]]:
        """Settle requests nobody is waiting for any more: ``abandoned`` or ``expired``.

        Abandoned: the owner process is gone (on this host: not running, or its pid now
        belongs to another process; elsewhere: no heartbeat for ``STALE_AFTER`` s). Expired:
        still pending well past its window (its owner should have expired it).
        """
        now = time.time() if now is None else now
        changed: list[tuple[str, str]] = []
        for request in self.list(state=PENDING, limit=None):
            why = _abandoned(request, now)
            if why is not None:
                if self.settle(request.id, ABANDONED, why):
                    changed.append((request.id, ABANDONED))
            elif now > request.expires_at + STALE_AFTER:
                outcome = "expired: nobody answered, and its owner did not close it"
                if self.settle(request.id, EXPIRED, outcome):
                    changed.append((request.id, EXPIRED))
        return changed

    # -- reading ---------------------------------------------------------------------------

    def _row(self, rid: str) -> Mapping[str, Any] | None:
        with self._read() as (cur, sql):
            return load(cur, sql, rid)

    def state(self, rid: str) -> str | None:
        with self._read() as (cur, sql):
            cur.execute(sql["state"], (rid,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def get(self, ref: str, *, allow_prefix: bool = False) -> ApprovalRequest:
        """The request named by id, token or (``allow_prefix``) unique id prefix."""
        rid, problem = self._resolve(ref, allow_prefix)
        if rid is None:
            raise ApprovalError(problem)
        self.flush_links()
        with self._read() as (cur, sql):
            row = load(cur, sql, rid)
            if row is None:
                raise ApprovalError(f"no approval request {ref!r}")
            return _request(row, answers_of(cur, sql, rid))

    def list(self, *, state: str | None = None, limit: int | None = 100) -> list[ApprovalRequest]:
        self.flush_links()
        with self._read() as (cur, sql):
            where = "" if state is None else " WHERE state = ?"
            text = sql["request"].split(" WHERE ", 1)[0] + where + " ORDER BY created_at DESC"
            if limit is not None:
                text += f" LIMIT {int(limit)}"
            cur.execute(self._raw.convert(text), () if state is None else (state,))
            rows = [dict(zip(REQUEST_COLUMNS, r, strict=True)) for r in cur.fetchall()]
            return [_request(r, answers_of(cur, sql, r["id"])) for r in rows]

    def _resolve(self, ref: str, allow_prefix: bool) -> tuple[str | None, str]:
        if not isinstance(ref, str) or not ref:
            return None, "no request named"
        if "." in ref:
            return self._from_token(ref)
        if self._row(ref) is not None:
            return ref, ""
        if not allow_prefix:
            return None, f"no approval request {ref!r}"
        with self._tx() as conn:
            found = [
                r[0]
                for r in conn.execute(
                    select(requests.c.id).where(requests.c.id.startswith(ref, autoescape=True))
                ).fetchmany(2)
            ]
        if not found:
            return None, f"no approval request {ref!r}"
        if len(found) > 1:
            return None, f"{ref!r} names more than one approval request; give more characters"
        return found[0], ""


def _log_link_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("could not link approval requests to their records: %s", future.exception())


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


def _abandoned(request: ApprovalRequest, now: float) -> str | None:
    """Why ``request``'s owner is presumed dead, or None if it may still be waiting.

    On this machine the process table decides (``audit_interrupted.owner_gone``: gone, a
    zombie, a reused pid, an earlier boot); where it cannot (another host or container), a
    heartbeat older than ``STALE_AFTER`` does.
    """
    owner = f"pid {request.owner_pid} on {request.owner_host}"
    gone = owner_gone(request.owner_started)
    if gone is True:
        return f"abandoned: its owner ({owner}) is no longer running"
    if gone is None and now - request.heartbeat_at > STALE_AFTER:
        return f"abandoned: no heartbeat from its owner ({owner}) for {STALE_AFTER:g} s"
    return None


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__
