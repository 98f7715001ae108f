"""The audit tables, portable across SQLAlchemy dialects.

Types are deliberately plain (text, integers, one float) so the hot write path can use the
driver directly with pre-built SQL, and so the canonical content that is hashed reads back
byte-for-byte identical on SQLite and PostgreSQL. Timestamps are fixed-width ISO-8601 UTC text,
which sorts chronologically as text.

* ``aegis_audit`` — one row per action. ``id`` is assigned from the chain head inside the write
  transaction, so ids are gapless and in chain order: a missing id *is* a deleted row.
* ``aegis_audit_head`` — one row: the last id, the last row hash and the last final sequence
  number. Every write transaction reads and updates it under a lock, which is what keeps two
  processes (or replicas) from forking the chain.
* ``aegis_audit_params`` — the params of a record whose params JSON is longer than
  ``PARAMS_INLINE_MAX``, written once with the intent; the row's own ``params`` is then ``''``.
  The outcome is an UPDATE of the row, and SQLite rewrites every overflow page of a row it
  updates: kept inline, a 50 MB param would be written twice. Readers use ``record_columns``
  / ``record_source``, which put the params back; hashes always cover the full params text.
* ``aegis_audit_sink_cursor`` — how far each sink has shipped (``final_seq``) and the lowest id
  that may still need shipping (``scan_from``), so a restarted sink resumes where it stopped.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql import FromClause

metadata = MetaData()

# SQLite only aliases the rowid for a column typed exactly INTEGER.
_Id = BigInteger().with_variant(Integer(), "sqlite")

audit_log = Table(
    "aegis_audit",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=False),
    Column("created_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Column("session_id", String(255)),
    Column("agent_id", String(255)),
    Column("action_type", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("risk_level", String(16)),
    Column("approval", String(16)),
    Column("matched_rule", Text),
    Column("decision", String(16), nullable=False),
    Column("approver", Text),
    Column("approval_reason", Text),
    Column("unknown_conditions", Text),
    Column("policy_fingerprint", String(128)),
    Column("parent_id", BigInteger),
    # Delegation (Action.parent_agent_id / chain_id / chain_depth): NULL when not delegated.
    Column("parent_agent_id", String(255)),
    Column("chain_id", String(255)),
    Column("chain_depth", Integer),
    # Shadow mode: the candidate policy's decision (or its error) as canonical JSON; NULL
    # without a shadow policy (aegis.runtime.shadow).
    Column("shadow", Text),
    # Approvals: the request's id and the seal of its answers, refused ones included
    # (aegis.runtime.approval.seal); NULL for an action no request was made for.
    Column("approval_request", String(32)),
    Column("approval_answers", Text),
    Column("result", String(16), nullable=False),
    Column("error", Text),
    Column("reason", Text),
    Column("duration_ms", Float),
    Column("attempts", Integer),
    Column("verified", SmallInteger),
    Column("final_seq", BigInteger),
    Column("prev_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
    Column("result_hash", String(64)),
    # Who wrote a pending row (host:pid:start), so a dead owner's rows become 'interrupted'.
    # Not hashed: it says nothing about the action (audit_interrupted).
    Column("owner", String(255)),
)
# Only the session index: each index costs a page write on the per-action path; time filters
# use the primary key order (ids are chronological) and the CLI's default is "the last N".
Index("ix_aegis_audit_session", audit_log.c.session_id)
# Type globs (``aegis audit -a 'delete*'``): the distinct types are found by skipping through
# this index, then each one's newest rows read in id order from it (audit_query._by_type), so
# a glob that matches nothing, or rarely, never scans the table.
Index("ix_aegis_audit_type", func.lower(audit_log.c.action_type), audit_log.c.id)
# Partial: rows outside any delegation chain (most of them) cost this index nothing. The WHERE
# is added by ``_partial`` below, not with ``postgresql_where=``: a dialect keyword makes
# SQLAlchemy import its whole PostgreSQL dialect at import time, even for a SQLite store
# (a few hundred ms on every CLI and hook start).
Index("ix_aegis_audit_chain", audit_log.c.chain_id, info={"where": "chain_id IS NOT NULL"})


@compiles(CreateIndex)
def _partial(create: CreateIndex, compiler: Any, **kw: Any) -> str:
    """``CREATE INDEX ... WHERE`` for an index whose ``info`` names a condition (SQLite and
    PostgreSQL share the syntax; elsewhere the index is simply whole)."""
    sql: str = compiler.visit_create_index(create, **kw)
    where = create.element.info.get("where")
    if where and compiler.dialect.name in ("sqlite", "postgresql"):
        sql = f"{sql} WHERE {where}"
    return sql


params_side = Table(
    "aegis_audit_params",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=False),
    Column("params", Text, nullable=False),
)

#: Params JSON longer than this (characters) goes to ``aegis_audit_params``: about a quarter of
#: a SQLite page, so a row that would overflow its page never keeps its params inline.
PARAMS_INLINE_MAX = 1024

chain_head = Table(
    "aegis_audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("last_final", BigInteger, nullable=False),
)

sink_cursor = Table(
    "aegis_audit_sink_cursor",
    metadata,
    Column("sink", String(255), primary_key=True),
    Column("final_seq", BigInteger, nullable=False),
    Column("scan_from", BigInteger, nullable=False),
    Column("updated_at", String(32), nullable=False),
)

#: What stateful conditions consumed (``aegis.runtime.limit_state``): one row per use, written
#: in the transaction of the write-ahead record it belongs to; rows older than their limit's
#: window are pruned. Not part of the hash chain (the records say what ran; this is a counter).
limit_usage = Table(
    "aegis_limit_usage",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("limit_id", String(64), nullable=False),
    Column("key", String(80), nullable=False),
    Column("at", Float, nullable=False),
    Column("amount", Float, nullable=False),
)
Index(  # covering: counts and sums read the index alone
    "ix_aegis_limit_usage",
    limit_usage.c.limit_id,
    limit_usage.c.key,
    limit_usage.c.at,
    limit_usage.c.amount,
)

#: Hash of "nothing before": the prev_hash of row 1.
GENESIS_HASH = "0" * 64

#: Intent columns in canonical order (what ``row_hash`` covers, after ``id``).
INTENT_COLUMNS: tuple[str, ...] = (
    "created_at",
    "session_id",
    "agent_id",
    "action_type",
    "target",
    "params",
    "description",
    "risk_level",
    "approval",
    "matched_rule",
    "decision",
    "approver",
    "approval_reason",
    "unknown_conditions",
    "policy_fingerprint",
    "parent_id",
    # Added later: hashed only when set (see audit_chain.intent_json), so rows written before
    # they existed keep their hashes.
    "parent_agent_id",
    "chain_id",
    "chain_depth",
    "shadow",
    "approval_request",
    "approval_answers",
)

#: How many leading INTENT_COLUMNS every row's hash covers, whatever the later ones hold.
BASE_INTENT_COLUMNS = 16

#: Outcome columns in canonical order (what ``result_hash`` covers).
RESULT_COLUMNS: tuple[str, ...] = (
    "final_seq",
    "finished_at",
    "result",
    "error",
    "reason",
    "duration_ms",
    "attempts",
    "verified",
)

ALL_COLUMNS: tuple[str, ...] = tuple(c.name for c in audit_log.columns)


def record_source() -> FromClause:
    """``aegis_audit`` with its out-of-row params joined in (select from this to read rows)."""
    return audit_log.outerjoin(params_side, params_side.c.id == audit_log.c.id)


def with_side_params(columns: list[Any]) -> list[Any]:
    """``columns`` (of ``aegis_audit``) with ``params`` read through ``record_source()``: the
    out-of-row text where there is one, else the row's own."""
    return [
        func.coalesce(params_side.c.params, audit_log.c.params).label("params")
        if column is audit_log.c.params
        else column
        for column in columns
    ]


def record_columns(names: tuple[str, ...] = ALL_COLUMNS) -> list[Any]:
    """Columns ``names`` of ``record_source()``, with ``params`` the full params text."""
    return with_side_params([audit_log.c[name] for name in names])
