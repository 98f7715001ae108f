"""Inclusion proofs: one record, shown to be part of a signed trail, without the database.

``aegis audit prove ID --checkpoint FILE`` writes a JSON proof::

    {"format": "aegis-proof/1",
     "record": {"id": 42, "prev_hash": "...", "intent": {...columns...},
                "outcome": {...columns, final_seq first...}},
     "leaf_index": 41, "tree_size": 1198, "path": ["<hex>", ...],
     "checkpoint": {...the signed checkpoint...}}

``verify_proof`` needs only that file and the public key: it recomputes the record's chained
intent hash (from ``prev_hash``, ``id`` and the intent), its outcome hash, its Merkle leaf, walks
the path to a root and checks that root against the checkpoint, whose signature it checks too.
Changing any field of the record changes a hash and the proof fails. A record still pending has
no outcome yet and cannot be proven until it is final and a later checkpoint covers it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Engine, select

from aegis.errors import AuditError
from aegis.runtime.audit.chain import canonical, intent_json, result_hash, row_hash
from aegis.runtime.audit.checkpoint import Checkpoint, iter_outcomes, snapshot
from aegis.runtime.audit.keys import key_id
from aegis.runtime.audit.merkle import inclusion_path, record_leaf, root_from_path
from aegis.runtime.audit.migrate import readable
from aegis.runtime.audit.schema import (
    BASE_INTENT_COLUMNS,
    INTENT_COLUMNS,
    RESULT_COLUMNS,
    audit_log,
    record_source,
    with_side_params,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "aegis-proof/1"


def prove(engine: Engine, record_id: int, checkpoint: Checkpoint) -> dict[str, Any]:
    """The proof that record ``record_id`` is in the trail ``checkpoint`` signed."""
    c = audit_log.c
    cols = ["id", "prev_hash", *INTENT_COLUMNS, *RESULT_COLUMNS, "row_hash", "result_hash"]
    with snapshot(engine) as conn:
        row = (
            conn.execute(
                select(*with_side_params(readable(engine, cols)))
                .select_from(record_source())
                .where(c.id == record_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise AuditError(f"no audit record {record_id}")
        seq = row["final_seq"]
        if seq is None:
            raise AuditError(f"record {record_id} is still pending: it has no outcome to prove")
        if seq > checkpoint.finals:
            raise AuditError(
                f"record {record_id} became final after {checkpoint.name} was signed "
                f"(outcome {seq} > {checkpoint.finals}); make a newer checkpoint"
            )
        leaves = (
            record_leaf(rid, rh, sh) for _s, rid, rh, sh in iter_outcomes(conn, checkpoint.finals)
        )
        try:
            leaf, path = inclusion_path(leaves, seq - 1, checkpoint.finals)
        except ValueError as exc:
            raise AuditError(f"cannot prove record {record_id}: {exc}") from None
    if root_from_path(leaf, seq - 1, checkpoint.finals, path) != bytes.fromhex(checkpoint.root):
        raise AuditError(
            f"the trail no longer matches {checkpoint.name}; run "
            "'aegis audit verify --checkpoint' to see what changed"
        )
    return {
        "format": FORMAT,
        "record": {
            "id": int(row["id"]),
            "prev_hash": row["prev_hash"],
            "intent": {name: row[name] for name in INTENT_COLUMNS},
            "outcome": {name: row[name] for name in RESULT_COLUMNS},
        },
        "leaf_index": seq - 1,
        "tree_size": checkpoint.finals,
        "path": [node.hex() for node in path],
        "checkpoint": checkpoint.to_dict(),
    }


@attrs.frozen
class ProofReport:
    ok: bool
    detail: str
    record_id: int | None = None

    def summary(self) -> str:
        return f"{'OK' if self.ok else 'INVALID'}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "record_id": self.record_id, "detail": self.detail}


def verify_proof(proof: Any, public_key: Ed25519PublicKey) -> ProofReport:
    """Check a proof offline; never raises for a malformed proof (it is simply invalid)."""
    try:
        return _verify(proof, public_key)
    except AuditError as exc:
        return ProofReport(False, str(exc))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return ProofReport(False, f"malformed proof ({type(exc).__name__}: {exc})")


def _verify(proof: Any, public_key: Ed25519PublicKey) -> ProofReport:
    if not isinstance(proof, dict) or proof.get("format") != FORMAT:
        return ProofReport(False, f"not an {FORMAT} document")
    cp = Checkpoint.from_dict(proof["checkpoint"], "the proof's checkpoint")
    if cp.key_id != key_id(public_key):
        return ProofReport(False, f"checkpoint signed by key {cp.key_id}, not the one given")
    if not cp.signature_ok(public_key):
        return ProofReport(False, "the checkpoint's signature does not match its content")
    record = proof["record"]
    rid = record["id"]
    if type(rid) is not int:
        return ProofReport(False, "record id is not an integer")
    intent, outcome = record["intent"], record["outcome"]
    # A proof made before a later column existed lacks it: it was NULL, and not hashed.
    known = list(INTENT_COLUMNS[: len(intent)])
    if (
        len(intent) < BASE_INTENT_COLUMNS
        or list(intent) != known
        or list(outcome) != list(RESULT_COLUMNS)
    ):
        return ProofReport(False, "the record's fields are not the audit columns", rid)
    rhash = row_hash(record["prev_hash"], rid, intent_json(list(intent.values())))
    shash = result_hash(rhash, canonical(list(outcome.values())))
    index, size = proof["leaf_index"], proof["tree_size"]
    if size != cp.finals or index != outcome["final_seq"] - 1:
        return ProofReport(False, "the proof's position does not match the record", rid)
    path = [bytes.fromhex(p) for p in proof["path"]]
    root = root_from_path(record_leaf(rid, rhash, shash), index, size, path)
    if root is None or root.hex() != cp.root:
        return ProofReport(
            False, f"record {rid} as given is not part of the trail the checkpoint signed", rid
        )
    return ProofReport(
        True,
        f"record {rid} ({intent['action_type']} on {intent['target']}, {outcome['result']}) is "
        f"part of the trail signed at {cp.time} by key {cp.key_id} ({cp.finals} outcomes)",
        rid,
    )
