"""``AuditLogger``: the original README's audit API (agent-aegis 0.1.x), kept for migrating code.

::

    from aegis.runtime.audit import AuditLogger

    logger = AuditLogger(db_path="aegis_audit.db")
    runtime = Runtime(executor=..., policy=..., audit_logger=logger)
    ...
    logger.get_log(session_id="s1")          # list of dicts, the original's keys
    logger.export_jsonl("audit.jsonl")
    logger.close()

It is a thin, synchronous face on an ``AuditStore`` (``logger.store``), not a second store: rows
written through ``log`` are hash-chained, redacted and shipped to sinks like every other, and
``aegis audit`` shows them. What differs from the original, by design:

* the dicts carry the original's keys, filled from the store's columns; ``result_data`` is
  always ``None`` (the store never keeps an executor's return value: it may hold anything);
* ``human_decision`` is the store's decision label when a person or the policy settled the
  action (``approved``, ``denied``, ``timeout``, ``blocked``), else ``None``;
* ``log(..., result=None)`` writes a *pending* record (an action whose outcome is not known),
  which ``aegis audit verify`` lists as incomplete;
* ``Runtime(audit_logger=...)`` does not close the logger: close it yourself (as with any store
  the runtime did not create).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result
from aegis.errors import AuditError

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.audit.record import AuditRecord

T = TypeVar("T")

_HUMAN = {"approved", "denied", "timeout", "blocked"}


class AuditLogger:
    """The original ``AuditLogger(db_path=...)``: log, get_log, count, export_jsonl, close."""

    def __init__(
        self, db_path: str | os.PathLike[str] = "aegis_audit.db", *, store: AuditStore | None = None
    ) -> None:
        from aegis.runtime.audit import AuditStore

        self.store: AuditStore = store if store is not None else AuditStore(db_path)
        self.store.open_sync()  # the original opened its database here; so do we, failing early

    def log(
        self,
        session_id: str,
        decision: PolicyDecision,
        *,
        result: Result | None = None,
        human_decision: str | None = None,
    ) -> int:
        """Write one record for ``decision`` (and its ``result``); returns the record's id."""
        action = attrs.evolve(decision.action, session_id=session_id)
        decision = attrs.evolve(decision, action=action)
        approval = _approval(human_decision)
        if result is None:
            return _wait(self.store.begin(action, decision, approval))
        result = attrs.evolve(result, action=action, decision=decision, approval=approval)
        return _wait(self.store.record(result))

    def get_log(
        self,
        session_id: str | None = None,
        *,
        action_type: str | None = None,
        risk_level: str | None = None,
        result_status: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = None,
        agent_id: str | None = None,
    ) -> list[dict[str, object]]:
        """Records as dicts with the original's keys, oldest first."""
        records = self.store.query(
            session=session_id or None,
            action_type=action_type or None,
            risk_level=risk_level or None,
            result=result_status or None,
            since=since,
            until=until,
            agent=agent_id or None,
            limit=limit,
        )
        return [_entry(r) for r in records]

    def count(
        self,
        *,
        session_id: str | None = None,
        action_type: str | None = None,
        risk_level: str | None = None,
        result_status: str | None = None,
    ) -> int:
        """Number of records matching the filters (all of them without any)."""
        filters: dict[str, Any] = {
            "session": session_id,
            "action_type": action_type,
            "risk_level": risk_level,
            "result": result_status,
        }
        return self.store.count(**{k: v for k, v in filters.items() if v})

    def export_jsonl(self, path: str | os.PathLike[str], session_id: str | None = None) -> int:
        """Write the records (of one session, if given) as JSON Lines; returns how many."""
        entries = self.get_log(session_id=session_id)
        with Path(path).open("w", encoding="utf-8") as fh:
            for entry in entries:
                fh.write(json.dumps(entry, default=str) + "\n")
        return len(entries)

    def close(self) -> None:
        """Write what is queued and close the store."""
        self.store.close_sync()

    def __enter__(self) -> AuditLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLogger(store={self.store!r})"


def store_for(audit: Any, audit_logger: AuditLogger | None) -> Any:
    """What ``Runtime(audit=..., audit_logger=...)`` records into: the logger's store if given."""
    if audit_logger is None:
        return audit
    if audit is not None:
        raise AuditError("give the Runtime audit= or audit_logger=, not both")
    if not isinstance(audit_logger, AuditLogger):
        raise AuditError(f"audit_logger must be an AuditLogger, not {type(audit_logger).__name__}")
    return audit_logger.store


def _approval(human_decision: str | None) -> ApprovalDecision | None:
    label = (human_decision or "").strip().lower()
    if label == "approved":
        return ApprovalDecision.approve()
    if label == "denied":
        return ApprovalDecision.deny()
    if label == "timeout":
        return ApprovalDecision(approved=False, timed_out=True)
    return None  # "blocked", None: the policy's own decision says it


def _entry(record: AuditRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "session_id": record.session_id,
        "timestamp": record.created_at.isoformat(),
        "action_type": record.action_type,
        "action_target": record.target,
        "action_params": json.dumps(record.params, default=str),
        "action_desc": record.description or None,
        "risk_level": record.risk_level,
        "approval": record.approval,
        "matched_rule": record.matched_rule,
        "human_decision": record.decision if record.decision in _HUMAN else None,
        "result_status": None if record.result == "pending" else record.result,
        "result_data": None,
        "result_error": record.error,
        "agent_id": record.agent_id,
    }


def _wait(coro: Coroutine[Any, Any, T]) -> T:
    """Run a store coroutine from synchronous code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aegis-audit-log") as pool:
        return pool.submit(asyncio.run, coro).result()
