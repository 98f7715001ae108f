"""Checking a trail against signed checkpoints (``aegis audit verify --checkpoint``).

The hash chain alone cannot catch someone who rewrites the database consistently: every hash
and the head recomputed, the tail cut off, or a second history grown from a copy. Checkpoints
signed earlier and kept elsewhere can. For each checkpoint with a good signature:

=============  ===================================================================================
bad_signature  the file was altered, or was not signed by the given key
wrong_key      signed by another key (its key id is named)
truncated      the checkpoint counted more records (or outcomes) than the trail now holds
rewritten      the records (or outcomes) the checkpoint covered are no longer what it signed; the
               range is narrowed by the checkpoints that still match
forked         two validly signed checkpoints describe different histories: both cannot be true.
               Either two of them sign the same size with different content, or one no longer
               matches while a later one matches the trail as it is now (the signer was made
               to vouch for a rewritten history)
=============  ===================================================================================

The chain's own findings (edited, deleted, inserted rows) are reported alongside.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Engine, func, select

from aegis.runtime.audit import query as audit_query
from aegis.runtime.audit.chain import VerifyReport
from aegis.runtime.audit.checkpoint import Checkpoint, iter_outcomes, snapshot
from aegis.runtime.audit.keys import key_id
from aegis.runtime.audit.merkle import EMPTY_ROOT, TreeBuilder, record_leaf
from aegis.runtime.audit.schema import GENESIS_HASH, audit_log

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KINDS = ("bad_signature", "wrong_key", "truncated", "rewritten", "forked")


@attrs.frozen
class Finding:
    kind: str
    checkpoint: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.checkpoint}: {self.detail}"


@attrs.frozen
class EvidenceReport:
    """``ok`` when the chain is intact and every checkpoint is signed and still matches."""

    chain: VerifyReport
    findings: tuple[Finding, ...]
    checkpoints: int
    matching: int

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.findings

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        """The chain's facts (``VerifyReport.to_dict``, ``status`` is the chain's) and the
        checkpoints' verdict; ``ok`` is the whole verdict, as the exit code is."""
        return {
            **self.chain.to_dict(),
            "ok": self.ok,
            "chain_ok": self.chain.ok,
            "checkpoints": self.checkpoints,
            "matching": self.matching,
            "findings": [
                {"kind": f.kind, "checkpoint": f.checkpoint, "detail": f.detail}
                for f in self.findings
            ],
        }

    def summary(self) -> str:
        lines = [self.chain.summary()]
        if self.ok:
            lines.append(f"OK: {self.checkpoints} checkpoint(s) signed and matching the trail")
        else:
            lines.append(
                f"CHECKPOINTS: {self.matching} of {self.checkpoints} match the trail, "
                f"{len(self.findings)} finding(s)"
            )
            lines += [f"  {f}" for f in self.findings]
        return "\n".join(lines)


def verify_against(
    engine: Engine, checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey
) -> EvidenceReport:
    chain = audit_query.verify(engine)
    findings: list[Finding] = []
    wanted = key_id(public_key)
    valid: list[Checkpoint] = []
    for cp in checkpoints:
        if cp.key_id != wanted:
            findings.append(
                Finding("wrong_key", cp.name, f"signed by key {cp.key_id}, not {wanted}")
            )
        elif not cp.signature_ok(public_key):
            findings.append(
                Finding("bad_signature", cp.name, "the signature does not match its content")
            )
        else:
            valid.append(cp)
    state = _TrailState.read(engine, valid)
    findings += _judge(valid, state)
    matching = sum(1 for cp in valid if state.intent_ok(cp) and state.outcome_ok(cp))
    return EvidenceReport(chain, tuple(findings), len(checkpoints), matching)


@attrs.define
class _TrailState:
    """What the trail holds at the points the checkpoints talk about."""

    records: int
    outcomes: int
    hash_at: dict[int, str]
    root_at: dict[int, str]

    @classmethod
    def read(cls, engine: Engine, checkpoints: Sequence[Checkpoint]) -> _TrailState:
        c = audit_log.c
        with snapshot(engine) as conn:
            records = int(conn.execute(select(func.max(c.id))).scalar() or 0)
            outcomes = int(conn.execute(select(func.max(c.final_seq))).scalar() or 0)
            sizes = sorted({cp.size for cp in checkpoints if 0 < cp.size <= records})
            hash_at: dict[int, str] = {0: GENESIS_HASH}
            for i in range(0, len(sizes), 500):
                part = sizes[i : i + 500]
                for rid, rhash in conn.execute(select(c.id, c.row_hash).where(c.id.in_(part))):
                    hash_at[int(rid)] = rhash
            wanted = sorted({cp.finals for cp in checkpoints if 0 < cp.finals <= outcomes})
            root_at: dict[int, str] = {0: EMPTY_ROOT.hex()}
            upto = wanted[-1] if wanted else 0
            if upto:
                builder = TreeBuilder()
                targets = iter(wanted)
                target = next(targets)
                for seq, rid, rhash, shash in iter_outcomes(conn, upto):
                    if seq != builder.size + 1:
                        break  # a gap: every root from here on differs, which is the finding
                    builder.add(record_leaf(rid, rhash, shash))
                    while target == builder.size:
                        root_at[target] = builder.root().hex()
                        target = next(targets, -1)
        return cls(records, outcomes, hash_at, root_at)

    def intent_ok(self, cp: Checkpoint) -> bool:
        return self.hash_at.get(cp.size) == cp.head

    def outcome_ok(self, cp: Checkpoint) -> bool:
        return self.root_at.get(cp.finals) == cp.root


def _judge(checkpoints: Sequence[Checkpoint], state: _TrailState) -> list[Finding]:
    findings: list[Finding] = []
    ordered = sorted(checkpoints, key=lambda cp: (cp.time, cp.size, cp.finals))
    forked: set[str] = set()
    # Two signatures over the same size (or outcome count) with different content.
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            same_size = a.size == b.size and a.head != b.head
            same_finals = a.finals == b.finals and a.root != b.root
            if same_size or same_finals:
                what = f"record {a.size}" if same_size else f"outcome {a.finals}"
                findings.append(
                    Finding(
                        "forked",
                        f"{a.name} / {b.name}",
                        f"both signed, with different hashes for the trail up to {what}: "
                        "two histories were grown from one trail",
                    )
                )
                forked.update((a.name, b.name))
    for cp in ordered:
        findings += _judge_one(cp, ordered, state, forked)
    return findings


def _judge_one(
    cp: Checkpoint, ordered: Sequence[Checkpoint], state: _TrailState, forked: set[str]
) -> list[Finding]:
    out: list[Finding] = []
    if cp.size > state.records:
        out.append(
            Finding(
                "truncated",
                cp.name,
                f"signed {cp.size} records, the trail now ends at record {state.records}: "
                f"records {state.records + 1}-{cp.size} were removed",
            )
        )
    elif not state.intent_ok(cp):
        below = [o.size for o in ordered if o.size < cp.size and state.intent_ok(o)]
        low = max(below, default=0) + 1
        later = [
            o for o in ordered if o.time > cp.time and o.size >= cp.size and state.intent_ok(o)
        ]
        if later and cp.name not in forked:
            out.append(
                Finding(
                    "forked",
                    cp.name,
                    f"records {low}-{cp.size} differ from what it signed, yet the later "
                    f"{later[0].name} signs the trail as it is now: two histories",
                )
            )
        elif cp.name not in forked:
            out.append(
                Finding(
                    "rewritten",
                    cp.name,
                    f"records {low}-{cp.size} were changed after it was signed "
                    f"(record {cp.size} no longer has the signed hash)",
                )
            )
    if cp.finals > state.outcomes:
        out.append(
            Finding(
                "truncated",
                cp.name,
                f"signed {cp.finals} outcomes, the trail now has {state.outcomes}: "
                "outcomes were removed",
            )
        )
    elif not state.outcome_ok(cp) and cp.name not in forked:
        below = [o.finals for o in ordered if o.finals < cp.finals and state.outcome_ok(o)]
        low = max(below, default=0) + 1
        out.append(
            Finding(
                "rewritten",
                cp.name,
                f"the outcomes numbered {low}-{cp.finals} (final_seq) are not the ones it "
                "signed: an outcome was edited, removed or re-ordered",
            )
        )
    return out
