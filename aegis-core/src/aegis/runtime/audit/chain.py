"""The tamper-evident hash chain: what is hashed, and how a stored trail is checked.

Every row carries ``row_hash = sha256(prev_hash "\\n" id "\\n" intent-json)`` where ``prev_hash``
is the previous row's ``row_hash``; when the outcome is known, ``result_hash = sha256(row_hash
"\\n" outcome-json)`` seals it, so an edited result is caught as surely as an edited intent. Ids
are gapless (assigned from the chain head), so a missing id is a deleted row, and a row beyond
the head is an inserted one.

What the chain does *not* give: someone with write access who recomputes every hash after an
edit (and the head) produces a consistent chain. Ship records to a sink you do not control, or
compare ``VerifyReport.last_hash`` with a copy kept elsewhere, to close that gap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from aegis.runtime.audit.chain_walk import (
    RangeWalk,
    canonical,
    exact_check,
    python_fast_rows,
    result_hash,
    row_hash,
)
from aegis.runtime.audit.chain_walk import intent_json as _intent_json
from aegis.runtime.audit.schema import (
    BASE_INTENT_COLUMNS,
    GENESIS_HASH,
    INTENT_COLUMNS,
    RESULT_COLUMNS,
)

__all__ = [
    "VERIFY_COLUMNS",
    "ChainProblem",
    "VerifyReport",
    "canonical",
    "finish_walk",
    "intent_json",
    "result_hash",
    "row_hash",
    "verify_rows",
]

_N_INTENT = len(INTENT_COLUMNS)


def intent_json(values: Sequence[Any]) -> str:
    """The hashed text of a row's intent: columns added after the first format are left out
    while they are NULL (trailing NULLs dropped), so every older row hashes as it always did,
    and a newer row's delegation fields are covered as soon as they are set."""
    return _intent_json(values, BASE_INTENT_COLUMNS)


@attrs.frozen
class ChainProblem:
    """One finding. ``kind``: edited, deleted, inserted, broken_link, head, or
    approval_answers (the answers a record sealed were deleted or edited: ``approval.seal``)."""

    kind: str
    first_id: int
    last_id: int
    detail: str

    @property
    def ids(self) -> range:
        return range(self.first_id, self.last_id + 1)

    def __str__(self) -> str:
        where = (
            f"row {self.first_id}"
            if self.first_id == self.last_id
            else f"rows {self.first_id}-{self.last_id}"
        )
        return f"{self.kind}: {where}: {self.detail}"


@attrs.frozen
class VerifyReport:
    """The result of ``AuditStore.verify()``: ``ok`` is False when any problem was found.

    ``pending`` lists rows whose action began but never recorded an outcome (in flight, or the
    process died while the action ran); they are not tampering, but an auditor should see them,
    so ``status`` (and the summary's first word) is ``incomplete`` then, never ``ok``. An empty
    trail is ``empty``: a new store looks exactly like one whose rows were all deleted and whose
    head was reset, which only a checkpoint kept elsewhere can tell apart.
    """

    checked: int
    last_id: int
    last_hash: str
    problems: tuple[ChainProblem, ...] = ()
    pending: tuple[int, ...] = ()
    #: Approval answers no record seals (late, unanswerable, or inserted; ``approval.seal``),
    #: and up to ten of the requests they belong to. Not tampering: not evidence either.
    unchained_answers: int = 0
    unchained_requests: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No tampering found (pending rows and an empty trail are not tampering)."""
        return not self.problems

    @property
    def status(self) -> str:
        """``tampered``, ``empty``, ``incomplete`` (rows without an outcome) or ``ok``."""
        if self.problems:
            return "tampered"
        if self.checked == 0:
            return "empty"
        return "incomplete" if self.pending else "ok"

    def ids_of(self, kind: str) -> list[int]:
        return sorted({i for p in self.problems if p.kind == kind for i in p.ids})

    @property
    def edited(self) -> list[int]:
        return self.ids_of("edited")

    @property
    def deleted(self) -> list[int]:
        return self.ids_of("deleted")

    @property
    def inserted(self) -> list[int]:
        return self.ids_of("inserted")

    def to_dict(self) -> dict[str, Any]:
        """Every fact ``summary()`` prints, for scripts (``aegis audit verify -f json``): the
        same status, counts and ids, so a script never has to parse the text to learn that
        some approval answers are not covered by the chain."""
        return {
            "ok": self.ok,
            "status": self.status,
            "checked": self.checked,
            "last_id": self.last_id,
            "last_hash": self.last_hash,
            "edited": self.edited,
            "deleted": self.deleted,
            "inserted": self.inserted,
            "problems": [
                {"kind": p.kind, "first_id": p.first_id, "last_id": p.last_id, "detail": p.detail}
                for p in self.problems
            ],
            "pending": list(self.pending),
            "unchained_answers": self.unchained_answers,
            "unchained_requests": list(self.unchained_requests),
        }

    def summary(self) -> str:
        head = f"{self.checked} records checked, chain head at id {self.last_id}"
        status = self.status
        if status == "tampered":
            lines = [f"TAMPERED: {head}, {len(self.problems)} problem(s)"]
            lines += [f"  {p}" for p in self.problems]
        elif status == "empty":
            lines = [
                "EMPTY: no records (a new store, or a trail that was emptied; only a checkpoint "
                "kept elsewhere can tell which)"
            ]
        elif status == "incomplete":
            lines = [f"INCOMPLETE: {head}, chain intact"]
        else:
            lines = [f"OK: {head}"]
        if self.pending:
            shown = ", ".join(str(i) for i in self.pending[:20])
            more = "" if len(self.pending) <= 20 else f" (+{len(self.pending) - 20} more)"
            lines.append(f"  {len(self.pending)} record(s) without an outcome: {shown}{more}")
        if self.unchained_answers:
            named = ", ".join(self.unchained_requests)
            lines.append(
                f"  {self.unchained_answers} approval answer(s) not covered by the chain "
                f"(given after the request's record was written, or to a request no record "
                f"names): request(s) {named}"
            )
        return "\n".join(lines)


#: Columns ``verify`` reads, in this order: id, prev_hash, intent..., result..., row/result hash.
VERIFY_COLUMNS: tuple[str, ...] = (
    "id",
    "prev_hash",
    *INTENT_COLUMNS,
    *RESULT_COLUMNS,
    "row_hash",
    "result_hash",
)


def verify_rows(
    rows: Iterator[Sequence[Any]], head_last_id: int | None, head_last_hash: str | None
) -> VerifyReport:
    """Walk rows (``VERIFY_COLUMNS``, ascending id) and name every edited/deleted/inserted row.

    ``head_last_id`` None means the head row is missing: that is itself a finding (the store
    always has one from its first open), and the chain's end cannot be checked without it.
    """
    kept: dict[int, Sequence[Any]] = {}

    def remember() -> Iterator[Sequence[Any]]:
        for row in rows:
            kept.clear()
            kept[int(row[0])] = row
            yield row

    def exact(ids: list[int]) -> dict[int, tuple[bool, bool]]:
        return exact_check([kept[i] for i in ids if i in kept], BASE_INTENT_COLUMNS, _N_INTENT)

    walk = RangeWalk(0, GENESIS_HASH, head_last_id, exact)
    walk.feed(python_fast_rows(remember(), BASE_INTENT_COLUMNS, _N_INTENT))
    return finish_walk([walk.to_dict()], head_last_id, head_last_hash)


def finish_walk(
    walks: Sequence[dict[str, Any]], head_last_id: int | None, head_last_hash: str | None
) -> VerifyReport:
    """Join the walks of consecutive id ranges (``RangeWalk.to_dict``) and check the chain's end
    against its head."""
    problems = [
        ChainProblem(str(k), int(a), int(b), str(d)) for w in walks for k, a, b, d in w["problems"]
    ]
    pending = [int(i) for w in walks for i in w["pending"]]
    checked = sum(int(w["checked"]) for w in walks)
    prev_id = int(walks[-1]["prev_id"]) if walks else 0
    hash_at_head = next((w["hash_at_head"] for w in walks if w["hash_at_head"] is not None), None)
    if head_last_id is None:
        problems.append(
            ChainProblem(
                "head",
                prev_id,
                prev_id,
                "the chain head is missing (table aegis_audit_head has no row): it was deleted, "
                f"so records after id {prev_id} may have been deleted too and cannot be checked "
                "without a checkpoint",
            )
        )
    elif prev_id < head_last_id:
        problems.append(
            ChainProblem("deleted", prev_id + 1, head_last_id, "missing from the end of the chain")
        )
    elif head_last_id > 0 and hash_at_head != head_last_hash:
        problems.append(
            ChainProblem("head", head_last_id, head_last_id, "last row does not match chain head")
        )
    return VerifyReport(
        checked=checked,
        last_id=prev_id if head_last_id is None else head_last_id,
        last_hash=head_last_hash or GENESIS_HASH,
        problems=tuple(problems),
        pending=tuple(pending),
    )
