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
consistent view. The rules for accepting an answer are in ``aegis.runtime.approval.rules``.

The book is this module (its public API); around it: ``approval.transactions`` (its
transactions, and where a call runs), ``approval.rows`` (the rows one call writes and reads),
``approval.sql`` (the prebuilt statements and the held connection), ``approval.tokens``
(callback tokens), ``approval.links`` (request -> record links written later),
``approval.reaping`` (abandoned and overdue requests) and ``approval.seal`` (answers sealed
into the action's audit record).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, select

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.errors import ApprovalError, AuditError
from aegis.runtime.approval import folded
from aegis.runtime.approval import reaping as approval_reaping
from aegis.runtime.approval.alongside import AlongsideRows, plan
from aegis.runtime.approval.reaping import HEARTBEAT_EVERY, STALE_AFTER
from aegis.runtime.approval.record import (
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
from aegis.runtime.approval.record import request_from_row as _request
from aegis.runtime.approval.rows import (
    WAITER,
    Attempt,
    answers_of,
    load,
    new_request,
    rule,
    snapshot,
    store_answer,
)
from aegis.runtime.approval.schema import requests
from aegis.runtime.approval.sql import CREATE_COLUMNS, REQUEST_COLUMNS
from aegis.runtime.approval.tokens import CallbackTokens
from aegis.runtime.approval.transactions import BookTransactions
from aegis.runtime.audit.schema import audit_log

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore

__all__ = [
    "ABANDONED",
    "HEARTBEAT_EVERY",
    "STALE_AFTER",
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

log = logging.getLogger("aegis.approvals")


class ApprovalBook(BookTransactions):
    """The approval requests of one audit database. Obtained as ``AuditStore.approvals``."""

    def __init__(self, store: AuditStore) -> None:
        super().__init__(store)
        self._tokens = CallbackTokens(self)
        self._audit_tables = False  # seen to exist (``_records_kept``)

    def close(self) -> None:
        """Write the links still pending and release the held connection (the store closes)."""
        try:
            self.flush_links()
        except AuditError:
            unlinked = len(self._links.queue)
            log.exception("could not link %d approval requests to their records", unlinked)
        self._raw.close()

    def token(self, request: ApprovalRequest | str, digest: str | None = None) -> str:
        """The opaque callback token of a request (``approval.tokens``)."""
        if isinstance(request, ApprovalRequest):
            rid, digest = request.id, request.digest
        else:
            rid = request
        if digest is None:
            digest = self.get(rid).digest
        return self._tokens.make(rid, digest)

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

    def plan_answered(
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
    ) -> AlongsideRows:
        """A new request and an answer nobody had to be asked for (the built-in ``auto``
        handler's), planned but not written: ``write_answered`` stores both in one transaction
        (an answer that does not approve), or they go with the action's record
        (``approval.alongside``). The answer is judged on the request exactly as planned, so
        no moment needs a pending request that someone else could see and answer."""
        self._prepare()  # the rows may be written by the audit writer, in its transaction
        return plan(
            action,
            decision,
            window=window,
            channel=channel,
            params_view=params_view,
            responder=responder,
            verdict=verdict,
            reason=reason,
            replaces=replaces,
            inline=self._inline_answers,
            fold=self.fold,
        )

    def write_answered(self, planned: AlongsideRows) -> tuple[ApprovalRequest, AnswerOutcome]:
        """Store a planned request and its answer in one transaction of their own."""
        values, request, attempt, ruling = (
            planned.values,
            planned.request,
            planned.attempt,
            planned.ruling,
        )
        settled_at, outcome = values["settled_at"], values["outcome"]
        with self._write() as (cur, sql):
            row = [values[c] for c in CREATE_COLUMNS]
            if ruling.new_state is None:
                cur.execute(sql["create"], row)
            else:
                cur.execute(sql["create_settled"], [*row, settled_at, outcome])
            answer = store_answer(cur, sql, request.id, attempt, ruling.accepted, ruling.message)
        after = request
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
        self._records_kept()
        for _attempt in range(20):
            with self._write() as (cur, sql):
                row = None if rid is None else self._load(cur, sql, rid)
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
        (``approval.flow.resuming``). Only a request still pending, or approved but not yet
        acted on (no audit record linked), can be adopted; one compare-and-swap on the owner,
        so of two adopters exactly one wins. None when it cannot be adopted."""
        now = time.time()
        with self._write() as (cur, sql):  # this process's pending links are written first
            me = WAITER
            cur.execute(sql["adopt"], (me.host, me.pid, me.owner, now, rid, previous_owner))
            if cur.rowcount != 1:
                return None
            row = load(cur, sql, rid)
            return None if row is None else _request(row, answers_of(cur, sql, rid))

    def link_audit(self, rid: str, audit_id: int) -> None:
        """Point a request at the audit record of the action it approved, now."""
        with self._write() as (cur, sql):
            cur.execute(sql["link"], (audit_id, rid))

    def defer_link(self, rid: str, audit_id: int) -> None:
        """``link_audit`` without a commit of its own (see ``approval.links``): written in this
        process's next book write, by any read of requests here, at the latest about a second
        later, or when the store closes."""
        self._links.add(rid, audit_id)

    @property
    def links_pending(self) -> bool:
        """Whether ``defer_link`` holds links not written yet."""
        return bool(self._links.queue)

    def reap(self, now: float | None = None) -> list[tuple[str, str]]:
        """Settle requests nobody is waiting for any more: ``abandoned`` or ``expired``
        (``approval.reaping``)."""
        return approval_reaping.reap(self, now)

    # -- reading ---------------------------------------------------------------------------

    def _row(self, rid: str) -> Mapping[str, Any] | None:
        self._records_kept()
        with self._read() as (cur, sql):
            return self._load(cur, sql, rid)

    def state(self, rid: str) -> str | None:
        kept = self._records_kept()
        with self._read() as (cur, sql):
            cur.execute(sql["state"], (rid,))
            row = cur.fetchone()
            if row is None:
                found = folded.load(cur, sql, rid) if kept else None
                return None if found is None else str(found["state"])
        return str(row[0])

    def get(self, ref: str, *, allow_prefix: bool = False) -> ApprovalRequest:
        """The request named by id, token or (``allow_prefix``) unique id prefix."""
        rid, problem = self._resolve(ref, allow_prefix)
        if rid is None:
            raise ApprovalError(problem)
        self.flush_links()
        self._records_kept()
        with self._read() as (cur, sql):
            row = self._load(cur, sql, rid)
            if row is None:
                raise ApprovalError(f"no approval request {ref!r}")
            return _request(row, answers_of(cur, sql, rid))

    def list(self, *, state: str | None = None, limit: int | None = 100) -> list[ApprovalRequest]:
        self.flush_links()
        kept = self._records_kept()
        with self._read() as (cur, sql):
            where, args = "", tuple[str, ...]()
            if state in STATES:  # a literal, so the planner can use the partial index
                where = f" WHERE state = '{state}'"
            elif state is not None:
                where, args = " WHERE state = ?", (state,)
            text = sql["request"].split(" WHERE ", 1)[0] + where + " ORDER BY created_at DESC"
            if limit is not None:
                text += f" LIMIT {int(limit)}"
            cur.execute(self._raw.convert(text), args)
            rows = [dict(zip(REQUEST_COLUMNS, r, strict=True)) for r in cur.fetchall()]
            if state in (None, APPROVED) and kept:  # and those kept in their records
                rows += [r for r in folded.newest(cur, sql, limit) if state in (None, r["state"])]
                rows.sort(key=lambda r: r["created_at"], reverse=True)
                rows = rows if limit is None else rows[: int(limit)]
            return [_request(r, answers_of(cur, sql, r["id"])) for r in rows]

    def _load(self, cur: Any, sql: dict[str, str], rid: str) -> dict[str, Any] | None:
        """The request row ``rid``, or the row of the request its record holds (``folded``)."""
        found = load(cur, sql, rid)
        if found is None and self._audit_tables and folded.marked(rid):
            found = folded.load(cur, sql, rid)
        return found

    def _records_kept(self) -> bool:
        """Whether this database has audit records that may hold requests (a book can be used
        on a database whose audit tables were never made). Asked before a transaction that
        reads requests, never inside one: it may open a connection of its own."""
        if not self._audit_tables:
            with self._tx() as conn:
                self._audit_tables = inspect(conn).has_table(audit_log.name)
        return self._audit_tables

    def _resolve(self, ref: str, allow_prefix: bool) -> tuple[str | None, str]:
        if not isinstance(ref, str) or not ref:
            return None, "no request named"
        if "." in ref:
            return self._tokens.check(ref)
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
        if len(found) < 2 and self._records_kept():
            with self._read() as (cur, sql):
                found += folded.prefixed(cur, sql, ref)
        if not found:
            return None, f"no approval request {ref!r}"
        if len(found) > 1:
            return None, f"{ref!r} names more than one approval request; give more characters"
        return found[0], ""
