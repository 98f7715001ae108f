"""One write transaction's work: extending the hash chain by a batch of ops.

Runs under the database's write lock (``audit.writer`` opens the transaction): reads the chain
head, gives each new row the next id and the hash of the one before it, seals each outcome with
the next final sequence number, writes the rows, then the head once for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aegis.errors import AuditError
from aegis.runtime.audit.chain import result_hash, row_hash
from aegis.runtime.audit.ops import (
    DECIDE,
    DECIDE_RECORD,
    DETACHED_OWNER,
    FINAL,
    INTENT,
    RECORD,
    SideWrite,
    Statements,
    WriteOp,
)


def apply_batch(cur: Any, ops: Sequence[WriteOp], st: Statements, owner: str | None) -> None:
    """Extend the chain by ``ops`` inside an open write transaction (the head read under its
    lock, every id, hash and final sequence number assigned, the rows and the head written).
    ``owner`` is recorded on pending rows (``audit_interrupted``)."""
    sql = st.sql
    cur.execute(sql["head"])
    head = cur.fetchone()
    if head is None:
        raise AuditError("the audit chain head is missing (table aegis_audit_head is empty)")
    last_id, last_hash, last_final = int(head[0]), head[1], int(head[2])
    start = (last_id, last_hash, last_final)
    intents: list[tuple[Any, ...]] = []
    sides: list[tuple[Any, ...]] = []
    records: list[tuple[Any, ...]] = []
    finals: list[tuple[Any, ...]] = []
    cursors: list[tuple[Any, ...]] = []
    extra: list[tuple[SideWrite, int]] = []
    for op in ops:
        kind = op.kind
        payload = op.payload
        if kind >= DECIDE:
            decided = payload(cur, st)
            if decided is None:
                op.value = None
                continue
            kind, payload = decided
        if kind == INTENT:
            intent_json, values, side_params = payload
            last_id += 1
            new_hash = row_hash(last_hash, last_id, intent_json)
            row_owner = DETACHED_OWNER if op.detached else owner
            intents.append((last_id, *values, last_hash, new_hash, row_owner))
            if side_params is not None:
                sides.append((last_id, side_params))
            op.value = (last_id, new_hash)
            last_hash = new_hash
            if op.side is not None:
                extra.append((op.side, last_id))
        elif kind == FINAL:
            audit_id, known_hash, rest, rest_json = payload
            if op.side is not None:
                extra.append((op.side, audit_id))
            if known_hash is None:
                cur.execute(sql["row"], (audit_id,))
                found = cur.fetchone()
                if found is None or found[1] != "pending":
                    raise AuditError(f"audit record {audit_id} does not exist or is final")
                known_hash = found[0]
            last_final += 1
            sealed = result_hash(known_hash, _with_seq(last_final, rest_json))
            finals.append((last_final, *rest, sealed, audit_id))
        elif kind == RECORD:
            intent_json, values, rest, rest_json = payload
            last_id += 1
            last_final += 1
            new_hash = row_hash(last_hash, last_id, intent_json)
            sealed = result_hash(new_hash, _with_seq(last_final, rest_json))
            records.append((last_id, *values, last_final, *rest, last_hash, new_hash, sealed))
            op.value = (last_id, new_hash)
            last_hash = new_hash
            if op.side is not None:
                extra.append((op.side, last_id))
        else:
            cursors.append(payload)
    if intents:
        cur.executemany(sql["insert_intent"], intents)
        if sides:
            cur.executemany(sql["insert_params"], sides)
    if records:
        cur.executemany(sql["insert"], records)
    if finals:
        if len(finals) == 1:
            cur.execute(sql["final"], finals[0])
        else:
            cur.executemany(sql["final"], finals)
        if cur.rowcount != len(finals):
            raise AuditError("an audit record to finish was not pending any more")
    for payload in cursors:
        cur.execute(sql["cursor_update"], payload)
        if cur.rowcount == 0:
            cur.execute(sql["cursor_insert"], payload)
    for side, audit_id in extra:
        side(cur, st, audit_id)
    if (last_id, last_hash, last_final) != start:
        cur.execute(sql["set_head"], (last_id, last_hash, last_final))


def holds_final(ops: Sequence[WriteOp]) -> bool:
    """Whether a batch finishes or records an action (decided before a DECIDE op runs)."""
    if len(ops) == 1:  # the sequential case: no generator per transaction
        kind = ops[0].kind
        return kind in (FINAL, RECORD, DECIDE_RECORD)
    return any(op.kind in (FINAL, RECORD, DECIDE_RECORD) for op in ops)


def _with_seq(final_seq: int, rest_json: str) -> str:
    """``canonical([final_seq, *rest])`` from the caller's ``canonical(rest)`` (a JSON list)."""
    return f"[{final_seq},{rest_json[1:]}"
