"""A request kept in its action's audit record: the ``auto`` approval, folded.

The built-in ``auto`` handler's approval is settled before anything is stored and nobody can
answer it afterwards (``approval.alongside``). A row of its own in ``aegis_approval_request``
would only repeat what the action's record holds (the action, the rule, the risk) and cost
every such action two more B-tree pages in its commit (the row and its id index); so, when
it approves at once and reopens nothing, the request is *folded*: no request row, no answer
row, and the record's hashed ``approval_answers`` column holds ``record:`` followed by what
only the request knows (its answer, times, digest, terms, waiter) as canonical JSON. The
hash chain then covers the answer directly: an edit of it is a broken chain in ``aegis audit
verify``, and there is no row to delete.

Its id begins with ``r`` (never a hex digit), so the book looks in the audit table only for
ids that may be folded (``marked``): a typed id that matches no request costs no scan. The
book reads a folded request back as the row it would have had (``load``, ``rows``), so every
reader of requests (``get``, ``list``, ``respond``: a late answer is refused as for any
settled request, and recorded) sees it as any other approved request. Finding one by id
scans the audit records for it: nothing indexes ``approval_request`` (an index would cost the
page this saves); ``aegis approvals show`` of an ``auto`` request is not a hot path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aegis.runtime.audit.chain import canonical
from aegis.runtime.audit.schema import audit_log, params_side

if TYPE_CHECKING:
    from aegis.runtime.approval.rows import Attempt

__all__ = ["FOLDED", "MARK", "STATEMENTS", "load", "marked", "new_id", "newest", "prefixed", "seal"]

#: How the ``approval_answers`` of a record holding its request begins.
FOLDED = "record:"
#: The first character of a folded request's id (ids of other requests are 32 hex digits).
MARK = "r"
_FORMAT = 1

_A, _P = audit_log.name, params_side.name
_SELECT = (
    f"SELECT a.id, a.approval_request, a.action_type, a.target, a.agent_id, a.session_id, "
    f"COALESCE(p.params, a.params), a.description, a.policy_fingerprint, a.matched_rule, "
    f"a.risk_level, a.approval_answers FROM {_A} a LEFT JOIN {_P} p ON p.id = a.id "
    f"WHERE substr(a.approval_answers, 1, {len(FOLDED)}) = '{FOLDED}'"
)
#: The book's statements that read folded requests (``approval.sql``, with the others).
STATEMENTS = {
    "folded": f"{_SELECT} AND a.approval_request = ? ORDER BY a.id LIMIT 1",
    "folded_prefix": f"{_SELECT} AND substr(a.approval_request, 1, ?) = ? ORDER BY a.id LIMIT 2",
    "folded_newest": f"{_SELECT} ORDER BY a.id DESC",
}


def marked(rid: object) -> bool:
    """Whether ``rid`` may name a folded request (it may also be a stored one: a folded plan
    that had to be stored after all keeps its id)."""
    return isinstance(rid, str) and len(rid) == 32 and rid[0] == MARK


def new_id() -> str:
    return MARK + os.urandom(16).hex()[1:]


def seal(values: Mapping[str, Any], at: float, attempt: Attempt, accepted: bool, note: str) -> str:
    """The record's ``approval_answers`` for the request ``values`` (``rows.request_values``)
    and its one answer: everything the request knows that its record does not."""
    verdict = str(attempt.verdict)[:16]  # as an answer row would keep it
    return FOLDED + canonical(
        [
            _FORMAT,
            [at, attempt.channel, attempt.identity, verdict, attempt.reason, int(accepted), note],
            values["created_at"],
            values["expires_at"],
            values["digest"],
            values["decision_reason"],
            values["requirements"],
            values["owner_host"],
            values["owner_pid"],
            values["owner_started"],
        ]
    )


def row(found: tuple[Any, ...]) -> dict[str, Any]:
    """The request row (``REQUEST_COLUMNS``) a folded record describes (``STATEMENTS``).

    A text that is not one this module wrote (the record was edited: ``verify`` says so)
    reads as a request in state ``unreadable`` whose one answer is refused, never as an
    approval (``record.inline_answer``)."""
    audit_id, rid, action_type, target, agent_id, session_id, params = found[:7]
    description, fingerprint, matched_rule, risk_level, text = found[7:]
    values: dict[str, Any] = {
        "id": rid,
        "version": 0,
        "action_type": action_type,
        "target": target,
        "agent_id": agent_id,
        "session_id": session_id,
        "params": params,
        "description": description,
        "policy_fingerprint": fingerprint,
        "matched_rule": matched_rule,
        "risk_level": str(risk_level or "").lower(),
        "escalated": 0,
        "replaces": None,
        "audit_id": int(audit_id),
        "edits": None,
    }
    try:
        fmt, answer, created, expires, digest, why, terms, host, pid, owner = json.loads(
            str(text)[len(FOLDED) :]
        )
        at, channel = float(answer[0]), str(answer[1])
        if fmt != _FORMAT or len(answer) != 7:
            raise ValueError(text)
        values.update(
            state="approved" if answer[3] == "approve" and answer[5] == 1 else "denied",
            created_at=float(created),
            expires_at=float(expires),
            settled_at=at,
            digest=str(digest),
            decision_reason=why,
            requirements=str(terms),
            channels=json.dumps([channel]),
            owner_host=str(host),
            owner_pid=int(pid),
            owner_started=str(owner),
            heartbeat_at=float(created),
            outcome=answer[6],
            answer=canonical(answer),
        )
    except (ValueError, TypeError, IndexError, KeyError):
        values.update(
            state="unreadable",
            created_at=0.0,
            expires_at=0.0,
            settled_at=None,
            digest="",
            decision_reason=None,
            requirements="{}",
            channels="[]",
            owner_host="",
            owner_pid=0,
            owner_started="",
            heartbeat_at=0.0,
            outcome="its record's approval_answers is unreadable (edited?)",
            answer=str(text),
        )
    return values


def load(cur: Any, sql: Mapping[str, str], rid: str) -> dict[str, Any] | None:
    """The row of the folded request ``rid``; None if no record holds it (or it is not marked)."""
    if not marked(rid):
        return None
    cur.execute(sql["folded"], (rid,))
    found = cur.fetchone()
    return None if found is None else row(tuple(found))


def prefixed(cur: Any, sql: Mapping[str, str], prefix: str) -> list[str]:
    """Ids of up to two folded requests beginning with ``prefix`` (a marked one)."""
    if not prefix.startswith(MARK):
        return []
    cur.execute(sql["folded_prefix"], (len(prefix), prefix))
    return [str(r[1]) for r in cur.fetchall()]


def newest(cur: Any, sql: Mapping[str, str], limit: int | None) -> list[dict[str, Any]]:
    """Rows of the newest folded requests (by record), up to ``limit``."""
    text = sql["folded_newest"] if limit is None else f"{sql['folded_newest']} LIMIT {int(limit)}"
    cur.execute(text)
    return [row(tuple(r)) for r in cur.fetchall()]
