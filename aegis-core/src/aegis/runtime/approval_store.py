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
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from sqlalchemy import (
    Connection,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from aegis.core.action import Action
from aegis.core.approvers import ApprovalRequirements
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
from aegis.runtime.approval_rules import Verdict, judge
from aegis.runtime.approval_schema import (
    _ANSWER,
    _INSERT_ANSWER,
    _INSERT_REQUEST,
    _LINK,
    _SELECT_ANSWERS,
    _SELECT_REQUEST,
    _SELECT_STATE,
    metadata,
    requests,
    secret_table,
)
from aegis.runtime.audit_interrupted import current_owner, owner_gone

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


HOST = socket.gethostname()
_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("aegis_inline", default=False)
_T = TypeVar("_T")
#: ``host:pid:start/boot/pidns`` (see ``audit_interrupted``): tells a dead or reused pid apart.
_OWNER = current_owner()


class ApprovalBook:
    """The approval requests of one audit database. Obtained as ``AuditStore.approvals``."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._secret: bytes | None = None
        self._ready = False

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        store = self._store
        try:
            with store._read_lock():
                engine = store._get_engine()
                if not self._ready:
                    # Another thread or process may be creating them right now: retried.
                    from aegis.runtime.audit import _create_tables

                    _create_tables(engine, tables=metadata)
                    self._ready = True
                with engine.begin() as conn:
                    if engine.dialect.name == "sqlite":
                        _tune_sqlite(conn, store.busy_timeout)
                    yield conn
        except SQLAlchemyError as exc:
            raise AuditError(f"approval store at {store._safe_url()}: {_one_line(exc)}") from exc

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
        return store.url.startswith("sqlite") and not store._memory and self._ready

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
        now = time.time()
        req = decision.requirements or ApprovalRequirements()
        values = {
            "id": uuid.uuid4().hex,
            "version": 1,
            "state": PENDING,
            "created_at": now,
            "expires_at": now + window,
            "action_type": action.type,
            "target": action.target,
            "agent_id": action.agent_id,
            "session_id": action.session_id,
            "params": json.dumps(params_view, default=str, ensure_ascii=False),
            "description": action.description,
            "digest": action.digest,
            "policy_fingerprint": decision.policy_fingerprint,
            "matched_rule": decision.matched_rule,
            "risk_level": decision.risk_level.name.lower(),
            "decision_reason": decision.reason,
            "requirements": json.dumps(attrs.asdict(req)),
            "escalated": 0,
            "channels": json.dumps(list(channels)),
            "owner_host": HOST,
            "owner_pid": os.getpid(),
            "owner_started": _OWNER,
            "heartbeat_at": now,
            "replaces": replaces,
        }
        with self._tx() as conn:
            conn.execute(_INSERT_REQUEST, values)
        return _request(
            {**values, "settled_at": None, "audit_id": None, "outcome": None, "edits": None}, ()
        )

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
        """
        identity = f"{channel}:{responder}"
        edits_json = None if edits is None else json.dumps(dict(edits), ensure_ascii=False)
        attempt = _Attempt(channel, identity, verdict, reason, edits_json, proof)
        rid: str | None
        if isinstance(ref, str) and ref and "." not in ref and not allow_prefix:
            rid, problem = ref, f"no approval request {ref!r}"  # checked in the transaction
        else:
            rid, problem = self._resolve(ref, allow_prefix)
        for _attempt in range(20):
            with self._tx() as conn:
                row = None if rid is None else _load(conn, rid)
                if row is None:
                    note = problem or "no such request"
                    _store_answer(conn, rid, attempt, False, note)
                    return AnswerOutcome(False, "", note, rid)
                assert rid is not None
                request = _request(row, _answers(conn, rid))
                if refused is not None:
                    ruling = Verdict(False, None, f"refused: {refused}")
                else:
                    ruling = judge(request, identity, verdict, reason, edits, digest, time.time())
                if ruling.new_state is None:
                    _store_answer(conn, rid, attempt, ruling.accepted, ruling.message)
                    return AnswerOutcome(ruling.accepted, request.state, ruling.message, rid)
                changed: dict[str, Any] = {
                    "state": ruling.new_state,
                    "settled_at": row["settled_at"],
                    "outcome": row["outcome"],
                    "edits": row["edits"],
                }
                if ruling.new_state != PENDING:
                    changed.update(settled_at=time.time(), outcome=ruling.message)
                if ruling.accepted and edits is not None:
                    changed["edits"] = edits_json
                done = conn.execute(
                    _ANSWER,
                    {
                        "rid": rid,
                        "seen": row["version"],
                        "next": row["version"] + 1,
                        **{f"new_{k}": v for k, v in changed.items()},
                    },
                )
                if done.rowcount != 1:
                    continue  # someone else changed it between our read and write: re-judge
                answer = _store_answer(conn, rid, attempt, ruling.accepted, ruling.message)
                after = attrs.evolve(
                    request,
                    state=ruling.new_state,
                    answers=(*request.answers, answer),
                    settled_at=changed.get("settled_at"),
                    outcome=changed.get("outcome"),
                    edits=(dict(edits) if ruling.accepted and edits is not None else request.edits),
                )
                return AnswerOutcome(ruling.accepted, ruling.new_state, ruling.message, rid, after)
        return AnswerOutcome(False, "", "the request kept changing; try again", rid)

    def settle(self, rid: str, state: str, outcome: str, *, only_from: str = PENDING) -> bool:
        """Move a request from ``only_from`` to ``state``; False if it was not in ``only_from``."""
        with self._tx() as conn:
            done = conn.execute(
                update(requests)
                .where(requests.c.id == rid, requests.c.state == only_from)
                .values(
                    state=state,
                    version=requests.c.version + 1,
                    settled_at=time.time(),
                    outcome=outcome,
                )
            )
            return bool(done.rowcount == 1)

    def escalate(self, rid: str) -> bool:
        with self._tx() as conn:
            done = conn.execute(
                update(requests)
                .where(requests.c.id == rid, requests.c.state == PENDING)
                .values(escalated=1, version=requests.c.version + 1)
            )
            return bool(done.rowcount == 1)

    def heartbeat(self, rids: Sequence[str]) -> None:
        if not rids:
            return
        with self._tx() as conn:
            conn.execute(
                update(requests)
                .where(requests.c.id.in_(list(rids)), requests.c.state == PENDING)
                .values(heartbeat_at=time.time())
            )

    def adopt(self, rid: str, *, previous_owner: str) -> ApprovalRequest | None:
        """Make this process the waiter of a request whose waiter died (``previous_owner``, its
        ``owner_started``), so ``reap`` leaves it alone and this process can resume the wait
        (``approval_flow.resuming``). Only a request still pending, or approved but not yet
        acted on (no audit record linked), can be adopted; one compare-and-swap on the owner,
        so of two adopters exactly one wins. None when it cannot be adopted."""
        with self._tx() as conn:
            done = conn.execute(
                update(requests)
                .where(
                    requests.c.id == rid,
                    requests.c.owner_started == previous_owner,
                    requests.c.state.in_([PENDING, APPROVED]),
                    requests.c.audit_id.is_(None),
                )
                .values(
                    owner_host=HOST,
                    owner_pid=os.getpid(),
                    owner_started=_OWNER,
                    heartbeat_at=time.time(),
                    version=requests.c.version + 1,
                )
            )
            if done.rowcount != 1:
                return None
            row = _load(conn, rid)
            return None if row is None else _request(row, _answers(conn, rid))

    def link_audit(self, rid: str, audit_id: int) -> None:
        with self._tx() as conn:
            conn.execute(_LINK.values(audit_id=bindparam("aid")), {"rid": rid, "aid": audit_id})

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
        with self._tx() as conn:
            return _load(conn, rid)

    def state(self, rid: str) -> str | None:
        with self._tx() as conn:
            row = conn.execute(_SELECT_STATE, {"rid": rid}).first()
        return None if row is None else str(row[0])

    def get(self, ref: str, *, allow_prefix: bool = False) -> ApprovalRequest:
        """The request named by id, token or (``allow_prefix``) unique id prefix."""
        rid, problem = self._resolve(ref, allow_prefix)
        if rid is None:
            raise ApprovalError(problem)
        with self._tx() as conn:
            row = _load(conn, rid)
            if row is None:
                raise ApprovalError(f"no approval request {ref!r}")
            return _request(row, _answers(conn, rid))

    def list(self, *, state: str | None = None, limit: int | None = 100) -> list[ApprovalRequest]:
        query = select(requests).order_by(requests.c.created_at.desc())
        if state is not None:
            query = query.where(requests.c.state == state)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            return [_request(r, _answers(conn, r["id"])) for r in rows]

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


def _load(conn: Connection, rid: str) -> Mapping[str, Any] | None:
    row = conn.execute(_SELECT_REQUEST, {"rid": rid}).first()
    return None if row is None else dict(row._mapping)


def _answers(conn: Connection, rid: str) -> tuple[AnswerRecord, ...]:
    rows = conn.execute(_SELECT_ANSWERS, {"rid": rid}).fetchall()
    return tuple(
        AnswerRecord(
            id=r.id,
            at=r.at,
            channel=r.channel,
            responder=r.responder,
            verdict=r.verdict,
            reason=r.reason,
            edits=None if r.edits is None else json.loads(r.edits),
            accepted=bool(r.accepted),
            note=r.note,
        )
        for r in rows
    )


@attrs.frozen
class _Attempt:
    """One answer as given, before it is judged."""

    channel: str
    identity: str
    verdict: str
    reason: str | None
    edits_json: str | None
    proof: str | None


def _store_answer(
    conn: Connection, rid: str | None, attempt: _Attempt, accepted: bool, note: str
) -> AnswerRecord:
    """Every attempt is stored, accepted or not, with why."""
    at = time.time()
    conn.execute(
        _INSERT_ANSWER,
        {
            "request_id": rid,
            "at": at,
            "channel": attempt.channel,
            "responder": attempt.identity,
            "verdict": str(attempt.verdict)[:16],
            "reason": attempt.reason,
            "edits": attempt.edits_json,
            "proof": attempt.proof,
            "accepted": 1 if accepted else 0,
            "note": note,
        },
    )
    return AnswerRecord(
        id=None,
        at=at,
        channel=attempt.channel,
        responder=attempt.identity,
        verdict=attempt.verdict,
        reason=attempt.reason,
        edits=None if attempt.edits_json is None else json.loads(attempt.edits_json),
        accepted=accepted,
        note=note,
    )


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
