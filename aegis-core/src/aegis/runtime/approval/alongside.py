"""A request answered before it was stored, written in the transaction of its action's record.

The built-in ``auto`` handler's answer is fixed before any request exists: nobody is asked, so
no moment needs a pending request someone else could see. Its request and answer therefore go
into the audit writer's transaction that writes the action's record (the write-ahead intent
of an action about to run, or the record of an action stopped before running) instead of a
commit of their own: one transaction, all or nothing. A rollback or a crash leaves neither the
request nor the record, and without the record the action never runs.

The answer is kept in the request row itself (its ``answer`` column: canonical JSON of at,
channel, responder, verdict, reason, accepted, note), not as a row of the answer table: one
INSERT, one index page and one seal of an answer row fewer per approval. The record seals it
(``approval.seal``: ``inline:`` and SHA-256 of the request's id with that text). That seal
needs nothing from the database, so it is made before the record is built (``seal_ahead``)
and the record goes to the writer as any record does, a plain INTENT or RECORD op; the
request row, holding the answer, is the op's side write, after the record and linked to its
id. Two cases are sealed inside the transaction instead, by a DECIDE op of the writer
(``audit.writer``) whose payload makes the answer and its seal and only then builds the
record: a stateful policy's intent (``limit_state``: the limits decide in the transaction),
and an answer that is an answer row, whose id the seal names: a request that reopened
earlier ones (the policy asked for more; it seals their answer rows with its own), or any
request in a store that lacks the column (``approval.migrate``: read-only, no DDL rights).

Every run of a payload makes the rows afresh (a batch that fails is retried op by op). A
payload that ends up writing no record (a limit refused the action in the transaction) leaves
nothing behind: the request row is only written after a record, and an answer row it inserted
is deleted in the same transaction; the rows go with the stop recorded next.

``AuditStore.begin``, ``record`` and ``write_ahead`` find the rows on the approval they are
given (``ApprovedAlongside.alongside``) and attach them; ``approval_values`` reads the seal
from them. Nothing here is ever written twice: once a record holding the rows is committed,
``committed`` says so and later writes only name them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.approvers import DEFAULT_REQUIREMENTS, ApprovalRequirements
from aegis.core.decision import PolicyDecision
from aegis.core.redact import Redactor
from aegis.errors import AuditError
from aegis.runtime.approval import folded
from aegis.runtime.approval import seal as approval_seal
from aegis.runtime.approval.record import APPROVED, PENDING, AnswerRecord, ApprovalRequest
from aegis.runtime.approval.rows import (
    Attempt,
    inline_answer_text,
    request_values,
    snapshot,
    store_answer,
)
from aegis.runtime.approval.rules import Verdict, judge
from aegis.runtime.approval.sql import CREATE_COLUMNS, prepared
from aegis.runtime.audit.writer import DECIDE, Statements, WriteOp

__all__ = [
    "AlongsideRows",
    "ApprovedAlongside",
    "delivered",
    "plan",
    "unwritten",
]


class Unstored:
    """A new request as ``judge`` reads it (``rules.Judged``) before anything of it is built:
    pending, unanswered, not escalated."""

    __slots__ = ("digest", "expires_at", "matched_rule", "requirements")

    state = PENDING
    escalated = False
    answers: tuple[AnswerRecord, ...] = ()
    approvers: tuple[str, ...] = ()

    def __init__(self, values: Mapping[str, Any], requirements: ApprovalRequirements) -> None:
        self.digest: str = values["digest"]
        self.expires_at: float = values["expires_at"]
        self.matched_rule: str | None = values["matched_rule"]
        self.requirements = requirements


def plan(
    action: Action,
    decision: PolicyDecision,
    *,
    window: float,
    channel: str,
    params_view: Mapping[str, Any],
    responder: str,
    verdict: str,
    reason: str | None,
    replaces: str | None,
    inline: bool = False,
    fold: bool = False,
) -> AlongsideRows:
    """Judge an answer nobody had to be asked for on the request it answers, writing nothing:
    the ruling is ``judge``'s, on the request exactly as it would first be stored. ``inline``:
    the store has the request row's ``answer`` column (``approval.migrate``); ``fold``: an
    answer that approves at once may be kept in the record (``approval.folded``)."""
    requirements = decision.requirements or DEFAULT_REQUIREMENTS
    channels = (channel,)
    values = request_values(action, decision, requirements, window, channels, params_view, replaces)
    identity = f"{channel}:{responder}"
    attempt = Attempt(channel, identity, verdict, reason, None, None)
    pending = Unstored(values, requirements)
    now = time.time()  # when the answer was given: judged, settled and stamped at once
    ruling = judge(pending, identity, verdict, reason, None, None, now)
    values["settled_at"] = values["outcome"] = None
    if ruling.new_state is not None:  # the row is written as the ruling leaves it
        values["version"], values["state"] = 2, ruling.new_state
        if ruling.new_state != PENDING:
            values["settled_at"], values["outcome"] = now, ruling.message
    # Approved at once, reopening nothing: kept in its record, with an id saying so (folded).
    folds = fold and inline and replaces is None and ruling.new_state == APPROVED
    if folds:
        values["id"] = folded.new_id()
    return AlongsideRows(
        values, requirements, channels, attempt, ruling, now, inline=inline, folds=folds
    )


class AlongsideRows:
    """A new request and the answer it was given before it was stored, judged (``plan``):
    the rows to write, and what became of them.

    An answer that approves (``approves``) goes with the action's record; this object is then
    also the request as the APPROVE step reads it once settled (``record.Settled``): the row
    just encoded is not decoded back into an ``ApprovalRequest`` nobody reads. Not escalated,
    no edits (an ``auto`` answer has none); its approvers are ``ApprovalRequest.approvers`` of
    that one answer. Any other answer is stored at once (``ApprovalBook.write_answered``)."""

    __slots__ = (
        "_request",
        "accepted",
        "answer",
        "approvers",
        "at",
        "attempt",
        "channels",
        "committed",
        "earlier",
        "folds",
        "id",
        "inline",
        "note",
        "outcome",
        "requirements",
        "ruling",
        "seal",
        "shared",
        "state",
        "values",
    )

    edits: dict[str, Any] | None = None
    escalated = False

    def __init__(
        self,
        values: dict[str, Any],
        requirements: ApprovalRequirements,
        channels: tuple[str, ...],
        attempt: Attempt,
        ruling: Verdict,
        at: float,
        *,
        inline: bool = False,
        folds: bool = False,
    ) -> None:
        #: The request row as the ruling leaves it (``CREATE_COLUMNS``, settled_at, outcome).
        self.values = values
        self.requirements = requirements
        self.channels = channels
        self.attempt = attempt
        self.ruling = ruling
        #: When the answer was given (its ``at``, in the request row's ``answer`` or its row).
        self.at = at
        self.id: str = values["id"]
        self.state: str = values["state"]
        self.outcome: str | None = values["outcome"]
        self.accepted = accepted = ruling.accepted
        self.note = ruling.message
        approved = accepted and attempt.verdict == "approve"
        self.approvers: tuple[str, ...] = (attempt.identity,) if approved else ()
        #: The answer goes in the request row (its ``answer`` column), not in an answer row:
        #: the store has that column. Only when no earlier answers are sealed with it.
        self.inline = inline
        #: No request row at all: the request is kept in its record (``approval.folded``).
        self.folds = folds
        #: The request row's ``answer`` as the last run of the payload made it (None: the
        #: answer is an answer row, or nothing is to be written).
        self.answer: str | None = None
        #: Answers of the requests this one replaced (already stored): sealed with it.
        self.earlier: tuple[AnswerRecord, ...] = ()
        #: The seal of the answer rows as last written (read by ``approval_values``).
        self.seal: str | None = None
        #: A record holding these rows was committed: they exist, never write them again.
        self.committed = False
        #: (params, redactor, redacted view) the request row was written from (``share``).
        self.shared: tuple[Mapping[str, Any], Redactor, Any] | None = None
        self._request: ApprovalRequest | None = None

    @property
    def approves(self) -> bool:
        """The answer settles the request as approved (so it can go with the record)."""
        return self.state == APPROVED

    @property
    def request(self) -> ApprovalRequest:
        """The request as first stored (pending), which the answer was judged on. Built when
        asked: an answer that approves never needs it."""
        if self._request is None:
            values = self.values
            params = json.loads(values["params"])
            self._request = snapshot(
                values, self.requirements, self.channels, params, state=PENDING
            )
        return self._request

    def share(self, params: Mapping[str, Any], redactor: Redactor, view: Any) -> None:
        """Offer the record the redacted ``view`` the request row was written from: an action
        with these very params, recorded with the same redactor, needs no second redaction
        (params are frozen with the Action, and redaction depends on nothing else)."""
        self.shared = (params, redactor, view)

    def redacted_params(self, params: Mapping[str, Any], redactor: Redactor) -> Any:
        """``redactor.redact(params)`` as already made (``share``), or None."""
        shared = self.shared
        if shared is None or shared[0] is not params or shared[1] is not redactor:
            return None
        return shared[2]

    @property
    def answers(self) -> tuple[AnswerRecord, ...]:
        """The one answer, as an answer read back would be (no id: it is no answer row)."""
        attempt = self.attempt
        answer = AnswerRecord(
            None,
            self.at,
            attempt.channel,
            attempt.identity,
            attempt.verdict,
            attempt.reason,
            None,
            self.accepted,
            self.note,
        )
        return (answer,)

    @property
    def request_id(self) -> str:
        return str(self.values["id"])

    def seal_ahead(self) -> bool:
        """Make the answer kept in the request row, and its seal, now, if this request keeps
        its answer there (``inline``, nothing earlier sealed with it): the seal then needs no
        id from the database, so the record can be built before it is submitted, as any
        record is, and written by a plain op whose side write adds the request row. False:
        the answer is an answer row, sealed in the transaction (a DECIDE op: ``attach``)."""
        if not self.inline or self.earlier:
            return False
        if self.folds:  # the seal is the request itself, hashed with the record
            text = folded.seal(self.values, self.at, self.attempt, self.accepted, self.note)
            self.answer = self.seal = text
            return True
        text = inline_answer_text(self.at, self.attempt, self.accepted, self.note)
        self.answer, self.seal = text, approval_seal.inline(self.request_id, text)
        return True

    def attach(self, op: WriteOp) -> None:
        """Make ``op`` write these rows in its transaction: the request row after its record,
        and, for a DECIDE op, the answer (and its seal) before the record is built. A plain
        op (INTENT, RECORD) needs the answer made and sealed already (``seal_ahead``)."""
        inner, side = op.payload, op.side
        if op.kind < DECIDE and self.answer is None:  # its record would seal no answer
            raise AuditError("an approval's answer must be sealed before its record is built")

        def decide(cur: Any, st: Statements) -> Any:
            if self.seal_ahead():  # kept in the request row, written after the record
                decided = inner(cur, st)
                if decided is None:  # no record after all, so no request row: nothing to undo
                    self.answer = self.seal = None
                return decided
            self.answer = None
            sql = prepared(st.paramstyle, st.sqlite)
            answer = store_answer(cur, sql, self.request_id, self.attempt, self.accepted, self.note)
            self.seal = approval_seal.seal([*self.earlier, answer])
            decided = inner(cur, st)
            if decided is None:  # no record after all: the answer goes with the next one
                cur.execute(sql["forget_answer"], (answer.id,))
                self.seal = None
            return decided

        def with_request(cur: Any, st: Statements, audit_id: int) -> None:
            if self.folds and self.answer is not None:  # kept in the record just written
                if side is not None:
                    side(cur, st, audit_id)
                return
            sql = prepared(st.paramstyle, st.sqlite)
            values = self.values
            row = [values[c] for c in CREATE_COLUMNS]
            row += (values["settled_at"], values["outcome"], audit_id)
            answer = self.answer
            if answer is None:
                cur.execute(sql["create_linked"], row)
            else:
                row.append(answer)
                cur.execute(sql["create_inline"], row)
            if side is not None:
                side(cur, st, audit_id)

        if op.kind >= DECIDE:
            op.payload = decide
        op.side = with_request


@attrs.frozen
class ApprovedAlongside(ApprovalDecision):
    """An approval whose request and answer are written with the action's record."""

    alongside: AlongsideRows | None = attrs.field(default=None, kw_only=True, eq=False, repr=False)


def delivered(approval: ApprovalDecision | None) -> ApprovalDecision | None:
    """The approval a caller is handed (``Result.approval``, ``Authorization.approval``) once
    the record holding its rows is committed: a plain ``ApprovalDecision`` with the seal that
    record holds, the rows left inside. Any other approval as it is."""
    rows = getattr(approval, "alongside", None)
    if rows is None or not rows.committed:
        return approval
    assert isinstance(rows, AlongsideRows) and approval is not None
    return ApprovalDecision(
        approval.approved,
        approver=approval.approver,
        reason=approval.reason,
        handler=approval.handler,
        timed_out=approval.timed_out,
        request_id=approval.request_id,
        approvers=approval.approvers,
        edited=approval.edited,
        answers_seal=rows.seal,
    )


def unwritten(approval: ApprovalDecision | None) -> AlongsideRows | None:
    """The rows an audit write must carry for ``approval``; None when there are none (any
    other approval) or they are written already."""
    if approval is None:
        return None
    rows = getattr(approval, "alongside", None)
    if rows is None or rows.committed:
        return None
    assert isinstance(rows, AlongsideRows)
    return rows


def earlier_answers(requests: Sequence[Any], current: str) -> tuple[AnswerRecord, ...]:
    """The stored answers of every request but ``current`` (what the seal covers besides)."""
    return tuple(a for r in requests if r.id != current for a in r.answers)
