"""Sealing a request's answers into the hash chain, and checking the seals.

Every answer to an approval request, accepted or refused, is a row in ``aegis_approval_answer``
(``approval.schema``), but one: the ``auto`` handler's answer to a request settled before it
was stored is kept in that request row's ``answer`` column (``approval.alongside``). Neither
table is chained; so that an answer, a refused attempt above all (a stranger, a replayed
token, an answer for another action), cannot be deleted or edited unnoticed, the audit record
of the action the request was for carries, in two hashed intent columns:

* ``approval_request`` — the request's id;
* ``approval_answers`` — the *seal*, one of three forms:

  - ``"<id>,<id>,...:<sha256>"``: the ids of the answer rows the decision was made on (its
    request's, and those of any request it replaced) and the SHA-256 of those rows exactly as
    stored (every column, ascending id, as canonical JSON);
  - ``"inline:<sha256>"``: the request's one answer kept in its row, SHA-256 of canonical JSON
    of ``[request id, answer text as stored]`` (``inline``), the request being the one the
    record names in ``approval_request``;
  - ``"record:<json>"``: the request itself, kept in the record (``approval.folded``: an
    ``auto`` approval has no rows at all); the chain's own hash is its seal, nothing is read.

``aegis audit verify`` reads the sealed rows back, in the snapshot it walks the chain in, and
reports a record whose rows are missing or differ as ``approval_answers`` (tampered, naming the
request): for an inline seal, the request row gone (or moved to another id), its ``answer``
cleared, or its text changed in any way. Answers no record seals are counted and named, never
passed off as chained: an answer given after its request's record was written (a late click,
a replayed token), one to a request no record names (its process died while waiting), one
naming no request at all, or a row inserted by hand. See docs/approvals-store.md, "Refused
answers and the hash chain".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from sqlalchemy import Connection, inspect, select

from aegis.runtime.approval.folded import FOLDED
from aegis.runtime.approval.record import AnswerRecord
from aegis.runtime.approval.schema import answers as answers_table
from aegis.runtime.approval.schema import requests as requests_table
from aegis.runtime.audit.chain import ChainProblem, canonical
from aegis.runtime.audit.migrate import readable
from aegis.runtime.audit.schema import audit_log

#: Records whose seals are checked per query (their answer ids go in one ``IN`` list).
BATCH = 400
#: Requests named in the report's line about answers outside the chain.
NAMED = 10
#: How a seal of an answer kept in its request row begins (``inline``).
INLINE = "inline:"


def seal(answers: Iterable[AnswerRecord]) -> str | None:
    """The seal of ``answers`` (None when there are none, or none was read from a row)."""
    rows = {a.stored[0]: a.stored for a in answers if a.stored and a.stored[0] is not None}
    if not rows:
        return None
    ordered = [rows[i] for i in sorted(rows)]
    return f"{','.join(str(i) for i in sorted(rows))}:{digest(ordered)}"


def inline(request_id: str, answer: str) -> str:
    """The seal of a request's one answer kept in its request row (``answer``, as stored):
    ``inline:`` and SHA-256 of the request's id with that text, as canonical JSON."""
    return INLINE + inline_digest(request_id, answer)


def inline_digest(request_id: str, answer: str) -> str:
    return hashlib.sha256(canonical([request_id, answer]).encode()).hexdigest()


def parse_inline(text: str) -> str | None:
    """The digest of an ``inline:`` seal; None if it is not one."""
    if not text.startswith(INLINE):
        return None
    found = text[len(INLINE) :]
    return found if len(found) == 64 else None


def digest(rows: Sequence[Sequence[Any]]) -> str:
    """SHA-256 of answer rows (``ANSWER_COLUMNS``, ascending id) as canonical JSON."""
    return hashlib.sha256(canonical([list(r) for r in rows]).encode()).hexdigest()


def parse(text: str) -> tuple[list[int], str] | None:
    """(answer ids, digest) of a seal; None if it is not one."""
    ids, sep, hexdigest = text.rpartition(":")
    try:
        found = [int(i) for i in ids.split(",")]
    except ValueError:
        return None
    if not sep or len(hexdigest) != 64 or not found:
        return None
    return found, hexdigest


@attrs.frozen
class SealCheck:
    """What ``check`` found: problems (tampering), and the answers no seal covers."""

    problems: tuple[ChainProblem, ...] = ()
    unchained: int = 0
    #: Requests (up to ``NAMED``) with answers outside the chain; "(no request)" for answers
    #: that named none.
    unchained_requests: tuple[str, ...] = ()


def check(conn: Connection) -> SealCheck:
    """Check every sealed record's answers against the answer rows (or, for an inline seal,
    its request row's ``answer``), in ``conn``'s snapshot; looked up ``BATCH`` records at a
    time."""
    engine = conn.engine
    request_col, seal_col = readable(engine, ["approval_request", "approval_answers"])
    has_answers = inspect(conn).has_table(answers_table.name)
    if seal_col is not audit_log.c.approval_answers:  # an older store: nothing was sealed
        sealed: list[Any] = []
    else:
        if not has_answers and not _any_sealed(conn):
            return SealCheck()
        sealed = list(
            conn.execute(
                select(audit_log.c.id, request_col, seal_col)
                .where(seal_col.is_not(None))
                .order_by(audit_log.c.id)
            )
        )
    problems: list[ChainProblem] = []
    covered: set[int] = set()
    held: Any = None  # the request table's answer column, looked for at the first inline seal
    for start in range(0, len(sealed), BATCH):
        batch = sealed[start : start + BATCH]
        batch = [r for r in batch if not str(r[2]).startswith(FOLDED)]  # hashed by the chain
        inline = [r for r in batch if str(r[2]).startswith(INLINE)]
        if inline:
            if held is None:
                held = _answer_column(conn)
            problems += _check_inline(conn, inline, held)
            batch = [r for r in batch if not str(r[2]).startswith(INLINE)]
        problems += _check_batch(conn, batch, has_answers, covered)
    problems.sort(key=lambda p: p.first_id)
    if not has_answers:
        return SealCheck(tuple(problems))
    unchained, named = 0, list[str]()
    for aid, rid in conn.execute(select(answers_table.c.id, answers_table.c.request_id)):
        if aid in covered:
            continue
        unchained += 1
        name = rid if rid is not None else "(no request)"
        if name not in named and len(named) < NAMED:
            named.append(name)
    return SealCheck(tuple(problems), unchained, tuple(named))


def _any_sealed(conn: Connection) -> bool:
    found = conn.execute(
        select(audit_log.c.id).where(audit_log.c.approval_answers.is_not(None)).limit(1)
    ).first()
    return found is not None


def _answer_column(conn: Connection) -> Any:
    """``aegis_approval_request.answer`` if the store has it, else False."""
    found = inspect(conn)
    if not found.has_table(requests_table.name):
        return False
    names = {c["name"] for c in found.get_columns(requests_table.name)}
    return requests_table.c.answer if "answer" in names else False


def _check_inline(conn: Connection, batch: Sequence[Any], column: Any) -> list[ChainProblem]:
    """Records whose seal covers the one answer kept in their request's row."""
    wanted = sorted({str(r[1]) for r in batch if r[1] is not None})
    held: dict[str, Any] = {}
    if wanted and column is not False:
        stmt = select(requests_table.c.id, column).where(requests_table.c.id.in_(wanted))
        held = {str(r[0]): r[1] for r in conn.execute(stmt)}
    problems = []
    for audit_id, request_id, text in batch:
        audit_id = int(audit_id)
        named = f"approval request {request_id or '(unnamed)'}"
        expected = parse_inline(str(text))
        if expected is None:
            why = f"{named}: its answers' seal is unreadable ({str(text)[:80]!r})"
        elif request_id is None or str(request_id) not in held:
            why = f"{named}: its row, holding the answer this record sealed, is missing (deleted)"
        elif held[str(request_id)] is None:
            why = f"{named}: the answer this record sealed is missing from its row (deleted)"
        elif inline_digest(str(request_id), str(held[str(request_id)])) != expected:
            why = f"{named}: its answer does not match what this record sealed (edited)"
        else:
            continue
        problems.append(ChainProblem("approval_answers", audit_id, audit_id, why))
    return problems


def _check_batch(
    conn: Connection, batch: Sequence[Any], has_answers: bool, covered: set[int]
) -> list[ChainProblem]:
    parsed = {int(r[0]): parse(str(r[2])) for r in batch}
    wanted = sorted({i for p in parsed.values() if p is not None for i in p[0]})
    rows: dict[int, tuple[Any, ...]] = {}
    if wanted and has_answers:
        stmt = select(*answers_table.columns).where(answers_table.c.id.in_(wanted))
        rows = {int(r[0]): tuple(r) for r in conn.execute(stmt)}
    problems = []
    for audit_id, request_id, text in batch:
        audit_id = int(audit_id)
        named = f"approval request {request_id or '(unnamed)'}"
        found = parsed[audit_id]
        if found is None:
            why = f"{named}: its answers' seal is unreadable ({str(text)[:80]!r})"
            problems.append(ChainProblem("approval_answers", audit_id, audit_id, why))
            continue
        ids, expected = found
        covered.update(ids)
        missing = [i for i in ids if i not in rows]
        if missing:
            shown = ", ".join(str(i) for i in missing[:10])
            why = f"{named}: answer row(s) {shown} sealed by this record are missing (deleted)"
            problems.append(ChainProblem("approval_answers", audit_id, audit_id, why))
        elif digest([rows[i] for i in sorted(ids)]) != expected:
            why = f"{named}: its answers do not match what this record sealed (edited)"
            problems.append(ChainProblem("approval_answers", audit_id, audit_id, why))
    return problems
