"""What the approval book writes and reads, one row at a time, on a driver cursor.

Kept apart from ``approval.store`` (the book: transactions, connections, the public API) so
each step is small enough to read: a new request's row and the request it describes, the
ruling on one answer (``judge``) applied with a compare-and-swap, and the answer rows.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import attrs

from aegis.core.action import Action
from aegis.core.approvers import DEFAULT_REQUIREMENTS, ApprovalRequirements
from aegis.core.decision import PolicyDecision
from aegis.core.risk import RiskLevel
from aegis.runtime.approval.record import (
    PENDING,
    AnswerOutcome,
    AnswerRecord,
    ApprovalRequest,
)
from aegis.runtime.approval.rules import Verdict, judge
from aegis.runtime.approval.sql import REQUEST_COLUMNS
from aegis.runtime.audit.chain import canonical
from aegis.runtime.audit.interrupted import current_owner
from aegis.runtime.audit.record import redacted_json


class _Waiter:
    """This process as a request row names its waiter (``owner_*``): renewed in a forked
    child, which is another process (a row naming the parent would be reaped when the parent
    dies, though the child still waits, and never while the parent lives)."""

    __slots__ = ("host", "owner", "pid")

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        #: ``host:pid:start/boot/pidns`` (``audit.interrupted``): a dead or reused pid told apart.
        self.owner = current_owner()


WAITER = _Waiter()
os.register_at_fork(after_in_child=WAITER.renew)
#: A request's ``risk_level`` column per level (``RiskLevel.name`` is a property: a Python call).
_RISK_NAMES = {level: level.name.lower() for level in RiskLevel}


def new_request(
    action: Action,
    decision: PolicyDecision,
    window: float,
    channels: Sequence[str],
    params_view: Mapping[str, Any],
    replaces: str | None,
) -> tuple[dict[str, Any], ApprovalRequest]:
    """A new pending request: its row values and the request they describe (built directly,
    not read back: the same values, without decoding what was just encoded)."""
    req = decision.requirements or DEFAULT_REQUIREMENTS
    shown = tuple(channels)
    values = request_values(action, decision, req, window, shown, params_view, replaces)
    return values, snapshot(values, req, shown, json.loads(values["params"]))


def request_values(
    action: Action,
    decision: PolicyDecision,
    requirements: ApprovalRequirements,
    window: float,
    channels: tuple[str, ...],
    params_view: Mapping[str, Any],
    replaces: str | None,
) -> dict[str, Any]:
    """The row of a new pending request (``CREATE_COLUMNS``), nothing else built."""
    now = time.time()
    return {
        "id": os.urandom(16).hex(),  # secrets.token_hex(16), minus three Python calls
        "version": 1,
        "state": PENDING,
        "created_at": now,
        "expires_at": now + window,
        "action_type": action.type,
        "target": action.target,
        "agent_id": action.agent_id,
        "session_id": action.session_id,
        "params": redacted_json(params_view),
        "description": action.description,
        "digest": action.digest,
        "policy_fingerprint": decision.policy_fingerprint,
        "matched_rule": decision.matched_rule,
        "risk_level": _RISK_NAMES[decision.risk_level],
        "decision_reason": decision.reason,
        "requirements": requirements_json(requirements),
        "escalated": 0,
        "channels": channels_json(channels),
        "owner_host": WAITER.host,
        "owner_pid": WAITER.pid,
        "owner_started": WAITER.owner,
        "heartbeat_at": now,
        "replaces": replaces,
    }


def snapshot(
    values: Mapping[str, Any],
    requirements: ApprovalRequirements,
    channels: tuple[str, ...],
    params: dict[str, Any],
    *,
    state: str | None = None,
    settled_at: float | None = None,
    outcome: str | None = None,
    answers: tuple[AnswerRecord, ...] = (),
) -> ApprovalRequest:
    """The request a new row's ``values`` describe (built directly: nothing to decode);
    ``state``, when given, instead of the row's."""
    return ApprovalRequest(
        id=values["id"],
        state=values["state"] if state is None else state,
        created_at=values["created_at"],
        expires_at=values["expires_at"],
        settled_at=settled_at,
        action_type=values["action_type"],
        target=values["target"],
        agent_id=values["agent_id"],
        session_id=values["session_id"],
        params=params,
        description=values["description"],
        digest=values["digest"],
        policy_fingerprint=values["policy_fingerprint"],
        matched_rule=values["matched_rule"],
        risk_level=values["risk_level"],
        decision_reason=values["decision_reason"],
        requirements=requirements,
        escalated=False,
        channels=channels,
        owner_host=values["owner_host"],
        owner_pid=values["owner_pid"],
        owner_started=values["owner_started"],
        heartbeat_at=values["heartbeat_at"],
        replaces=values["replaces"],
        audit_id=None,
        outcome=outcome,
        edits=None,
        answers=answers,
    )


@functools.lru_cache(maxsize=256)
def channels_json(channels: tuple[str, ...]) -> str:
    """The channels notified, as stored (the same few lists for every request)."""
    return json.dumps(list(channels))


@functools.lru_cache(maxsize=256)
def requirements_json(req: ApprovalRequirements) -> str:
    """A rule's terms as stored (the same few objects for every request of a policy)."""
    return json.dumps(attrs.asdict(req))


def rule(
    cur: Any,
    sql: dict[str, str],
    request: ApprovalRequest,
    version: int,
    attempt: Attempt,
    edits: Mapping[str, Any] | None,
    digest: str | None,
    refused: str | None,
) -> AnswerOutcome | None:
    """Judge one answer to ``request`` (as stored at ``version``), store it and apply the ruling.

    None when the compare-and-swap lost (the request changed since it was read): nothing was
    written, and the caller judges again on a fresh read.
    """
    rid = request.id
    if refused is not None:
        ruling = Verdict(False, None, f"refused: {refused}")
    else:
        identity, verdict, reason = attempt.identity, attempt.verdict, attempt.reason
        ruling = judge(request, identity, verdict, reason, edits, digest, time.time())
    if ruling.new_state is None:
        store_answer(cur, sql, rid, attempt, ruling.accepted, ruling.message)
        return AnswerOutcome(ruling.accepted, request.state, ruling.message, rid)
    settled_at, outcome = request.settled_at, request.outcome
    new_edits = None if request.edits is None else json.dumps(request.edits, ensure_ascii=False)
    if ruling.new_state != PENDING:
        settled_at, outcome = time.time(), ruling.message
    if ruling.accepted and edits is not None:
        new_edits = attempt.edits_json
    cur.execute(
        sql["answer"],
        (version + 1, ruling.new_state, settled_at, outcome, new_edits, rid, version),
    )
    if cur.rowcount != 1:
        return None
    answer = store_answer(cur, sql, rid, attempt, ruling.accepted, ruling.message)
    after = attrs.evolve(
        request,
        state=ruling.new_state,
        answers=(*request.answers, answer),
        settled_at=settled_at,
        outcome=outcome,
        edits=(dict(edits) if ruling.accepted and edits is not None else request.edits),
    )
    return AnswerOutcome(ruling.accepted, ruling.new_state, ruling.message, rid, after)


def load(cur: Any, sql: dict[str, str], rid: str) -> dict[str, Any] | None:
    cur.execute(sql["request"], (rid,))
    row = cur.fetchone()
    return None if row is None else dict(zip(REQUEST_COLUMNS, row, strict=True))


def answers_of(cur: Any, sql: dict[str, str], rid: str) -> tuple[AnswerRecord, ...]:
    cur.execute(sql["answers"], (rid,))
    return tuple(_answer(tuple(r)) for r in cur.fetchall())


def _answer(stored: tuple[Any, ...]) -> AnswerRecord:
    """The answer a row (``ANSWER_COLUMNS``, as stored) describes."""
    aid, _rid, at, channel, responder, verdict, reason, edits, _proof, accepted, note = stored
    return AnswerRecord(
        id=aid,
        at=at,
        channel=channel,
        responder=responder,
        verdict=verdict,
        reason=reason,
        edits=None if edits is None else json.loads(edits),
        accepted=bool(accepted),
        note=note,
        stored=stored,
    )


def inline_answer_text(at: float, attempt: Attempt, accepted: bool, note: str) -> str:
    """The one answer of a request settled before it was stored, as its request row keeps it
    (``answer``): canonical JSON of at, channel, responder, verdict, reason, accepted (0/1) and
    note, the fields of an answer row that such an answer has (``record.inline_answer``)."""
    verdict = str(attempt.verdict)[:16]  # as an answer row would keep it
    flag = 1 if accepted else 0
    return canonical([at, attempt.channel, attempt.identity, verdict, attempt.reason, flag, note])


class Attempt(NamedTuple):
    """One answer as given, before it is judged."""

    channel: str
    identity: str
    verdict: str
    reason: str | None
    edits_json: str | None
    proof: str | None


def store_answer(
    cur: Any,
    sql: dict[str, str],
    rid: str | None,
    attempt: Attempt,
    accepted: bool,
    note: str,
) -> AnswerRecord:
    """Every attempt is stored, accepted or not, with why."""
    values = (
        rid,
        time.time(),
        attempt.channel,
        attempt.identity,
        str(attempt.verdict)[:16],
        attempt.reason,
        attempt.edits_json,
        attempt.proof,
        1 if accepted else 0,
        note,
    )
    text = sql["store_answer"]
    cur.execute(text, values)
    aid = cur.fetchone()[0] if text.endswith("RETURNING id") else cur.lastrowid
    record = _answer((aid, *values))
    # The verdict as given (the row keeps 16 characters of it), as callers have always seen it.
    return (
        record
        if record.verdict == attempt.verdict
        else attrs.evolve(record, verdict=attempt.verdict)
    )
