"""``aegis approvals``: list, show, approve, deny and expire approval requests.

Requests live in the audit database (``--db`` / ``AEGIS_AUDIT_URL``), so any terminal on that
database can answer a ``run_one`` that is waiting in another process; the waiter goes on
within a second. Answers given here come from the identity ``cli:<login name>`` (what an
``approvers`` allow list names). Whoever can write the audit database can answer through
this command: protect the database as you would the policy.

Exit codes: 0 done; 1 the answer was refused (already answered, expired, not an allowed
approver, edits not allowed); 2 bad arguments or an unknown / ambiguous id; 3 store
unreachable.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import App, Parameter

from aegis.cli.db_option import DbOption, open_store
from aegis.cli.errors import CliError, ExitCode
from aegis.cli.output import print_message, print_table
from aegis.cli.parsing import parse_value

if TYPE_CHECKING:
    from aegis.runtime.approval.store import ApprovalBook, ApprovalRequest

APPROVALS_HELP = "Answer approval requests waiting in the audit database (from any terminal)."

Format = Annotated[Literal["table", "json"], Parameter(alias="-f", help="Output format.")]
Reason = Annotated[str | None, Parameter(help="Why: stored with the answer and audited.")]

COLUMNS = ("id", "action", "risk", "rule", "agent", "age", "expires in", "state")


def build() -> App:
    app = App(name="approvals", help=APPROVALS_HELP)
    app.default(list_requests)
    app.command(show, name="show")
    app.command(approve, name="approve")
    app.command(deny, name="deny")
    app.command(expire, name="expire")
    return app


def _book(db: str | None, *, reap: bool = True) -> ApprovalBook:
    book = open_store(db).approvals
    if reap:  # a request whose waiter died is abandoned before anyone sees or answers it
        book.reap()
    return book


def _identity() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "local"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _as_dict(req: ApprovalRequest, book: ApprovalBook | None = None) -> dict[str, Any]:
    """Kept for callers of the old private name; use ``approval.view.request_dict``."""
    from aegis.runtime.approval.view import request_dict

    return request_dict(req)


def _iso(ts: float) -> str:
    from aegis.runtime.approval.view import iso

    return iso(ts)


def list_requests(
    *,
    every: Annotated[
        bool, Parameter(name="--all", negative="", help="Settled requests too, newest first.")
    ] = False,
    limit: Annotated[int, Parameter(help="At most this many.")] = 50,
    format: Format = "table",
    db: DbOption = None,
) -> int:
    """Pending approval requests: id, action, risk, rule, agent, age, expires in."""
    book = _book(db)
    found = book.list(state=None if every else "pending", limit=limit)
    if format == "json":
        sys.stdout.write(json.dumps([_as_dict(r) for r in found], indent=2) + "\n")
        return ExitCode.OK
    if not found:
        print_message("no approval requests" if every else "no pending approval requests")
        return ExitCode.OK
    now = time.time()
    rows = [
        (
            r.id[:8],
            f"{r.action_type} -> {r.target}",
            r.risk_level,
            r.matched_rule or "(defaults)",
            r.agent_id or "-",
            _ago(now - r.created_at),
            _ago(r.expires_at - now) if r.state == "pending" else "-",
            r.state,
        )
        for r in found
    ]
    print_table(COLUMNS, rows)
    return ExitCode.OK


def show(request: str, /, *, format: Format = "table", db: DbOption = None) -> int:
    """Everything about one request (params with secrets redacted) and who may answer it.

    REQUEST is an id or a unique id prefix.
    """
    req = _get(_book(db), request)
    data = _as_dict(req)
    if format == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return ExitCode.OK
    lines = [
        f"request     {req.id}  ({req.state})",
        f"action      {req.action_type} -> {req.target}"
        + (f"  ({req.description})" if req.description else ""),
        f"params      {json.dumps(req.params, ensure_ascii=False)}",
        f"agent       {req.agent_id or '-'}   session {req.session_id or '-'}",
        f"risk        {req.risk_level}   rule {req.matched_rule or '(defaults)'}",
        f"why         {req.decision_reason or '-'}",
        f"may answer  {data['who_may_answer']}" + ("  (escalated)" if req.escalated else ""),
        f"created     {data['created_at']}   expires {data['expires_at']}",
        f"channels    {', '.join(req.channels) or '-'}   owner {data['owner']}",
        f"digest      {req.digest}",
    ]
    if req.outcome:
        lines.append(f"outcome     {req.outcome}")
    for a in req.answers:
        mark = "accepted" if a.accepted else "refused"
        lines.append(f"answer      {_iso(a.at)} {a.responder} {a.verdict} ({mark}): {a.note}")
    sys.stdout.write("\n".join(lines) + "\n")
    return ExitCode.OK


def approve(
    request: str,
    /,
    *,
    reason: Reason = None,
    set: Annotated[
        list[str] | None,
        Parameter(
            name="--set",
            negative_iterable="",
            help="Edit a param before approving: key=value (JSON values; a.b for nested).",
        ),
    ] = None,
    db: DbOption = None,
) -> int:
    """Approve a request (optionally with edited params); the waiting action goes on."""
    edits = _edits(set)
    return _answer(db, request, "approve", reason, edits)


def deny(request: str, /, *, reason: Reason = None, db: DbOption = None) -> int:
    """Deny a request; the reason reaches the caller (and the model) as Result.reason."""
    return _answer(db, request, "deny", reason, None)


def expire(*, db: DbOption = None) -> int:
    """Mark requests whose waiting process died as abandoned, and overdue ones as expired."""
    changed = _book(db, reap=False).reap()
    for rid, state in changed:
        print_message(f"{rid[:8]}  {state}")
    if not changed:
        print_message("nothing to expire")
    return ExitCode.OK


def _edits(items: list[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    edits: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not p for p in key.split(".")):
            raise CliError(f"--set {item!r}: expected key=value, e.g. --set count=100")
        edits[key] = parse_value(raw)
    return edits


def _get(book: ApprovalBook, ref: str) -> ApprovalRequest:
    from aegis.errors import ApprovalError

    try:
        return book.get(ref, allow_prefix=True)
    except ApprovalError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None


def _answer(
    db: str | None, ref: str, verdict: str, reason: str | None, edits: dict[str, Any] | None
) -> int:
    book = _book(db)
    req = _get(book, ref)  # unknown or ambiguous: exit 2 before anything is recorded
    outcome = book.respond(
        req.id,
        channel="cli",
        responder=_identity(),
        verdict=verdict,
        reason=reason,
        edits=edits,
        digest=req.digest,
    )
    if not outcome.accepted:
        raise CliError(f"{req.id[:8]}: {outcome.message}", ExitCode.CHECK_FAILED)
    print_message(f"{req.id[:8]}: {outcome.message} (request is {outcome.state})", style="bold")
    return ExitCode.OK
