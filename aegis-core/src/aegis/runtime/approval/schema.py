"""The approval tables, in the audit database (created beside the audit's own tables).

* ``aegis_approval_request`` — one row per request; ``version`` makes every change a
  compare-and-swap, so two answers (two processes, two replicas) cannot both settle it.
* ``aegis_approval_answer`` — every answer given, accepted or refused, with why; except the
  one answer of a request settled before it was stored (an ``auto`` approval), which is kept
  in its request row (``answer``).
* ``aegis_approval_secret`` — the per-store secret behind callback tokens.

The hot statements are plain SQL on a held driver connection (``approval.sql``).
"""

from __future__ import annotations

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
)

# ``CREATE INDEX ... WHERE`` for an index with ``info["where"]`` is compiled by audit.schema.
from aegis.runtime.audit import schema as _audit_schema  # noqa: F401

metadata = MetaData()

requests = Table(
    "aegis_approval_request",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("settled_at", Float),
    Column("action_type", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("agent_id", Text),
    Column("session_id", Text),
    Column("params", Text, nullable=False),  # redacted, for people to read
    Column("description", Text, nullable=False),
    Column("digest", String(64), nullable=False),  # of the real (unredacted) action
    Column("policy_fingerprint", String(128)),
    Column("matched_rule", Text),
    Column("risk_level", String(16), nullable=False),
    Column("decision_reason", Text),
    Column("requirements", Text, nullable=False),  # JSON of ApprovalRequirements
    Column("escalated", SmallInteger, nullable=False),
    Column("channels", Text, nullable=False),  # JSON list of channel names notified
    Column("owner_host", Text, nullable=False),
    Column("owner_pid", Integer, nullable=False),
    Column("owner_started", Text, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("replaces", String(32)),  # the request this one reopens (policy tightened)
    Column("audit_id", BigInteger),  # the action's audit record, once written
    Column("outcome", Text),  # why it settled as it did
    Column("edits", Text),  # JSON of the accepted edits, if any
    # The one answer of a request settled before it was stored (the built-in ``auto``
    # handler's, written with its action's record): canonical JSON of [at, channel,
    # responder, verdict, reason, accepted, note], sealed by that record (``approval.seal``).
    # NULL for every other request, whose answers are rows of ``aegis_approval_answer``.
    # Added to older stores by ``approval.migrate``.
    Column("answer", Text),
)
# Partial: requests are only ever looked up by state while pending (the reaper, ``aegis
# approvals list``, the dashboard; ``ApprovalBook.list`` names the state as a literal so the
# planner can use it). A request settled before it is written (an ``auto`` answer, stored with
# its action's record) costs this index nothing: one B-tree fewer in that transaction. Stores
# from before it had a full index on state: ``approval.migrate`` replaces it.
Index(
    "ix_aegis_approval_request_pending",
    requests.c.state,
    info={"where": "state = 'pending'"},
)

answers = Table(
    "aegis_approval_answer",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(32)),  # None when the reference resolved to nothing
    Column("at", Float, nullable=False),
    Column("channel", String(64), nullable=False),
    Column("responder", Text, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("reason", Text),
    Column("edits", Text),
    Column("proof", Text),
    Column("accepted", SmallInteger, nullable=False),
    Column("note", Text),  # why it was refused, or what it did
)
Index("ix_aegis_approval_answer_request", answers.c.request_id)

secret_table = Table(
    "aegis_approval_secret",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("secret", String(64), nullable=False),
)
