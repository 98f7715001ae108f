"""Executions that outlive one HTTP call, kept in the audit database so any replica can answer
their status URL and pick up those whose replica died.

A row is written only when an execution must be waited for (it asked for approval, or it
still runs when the first answer goes out): an ``auto`` action answered in the same call
costs no write here. States:

* ``waiting`` — for approval request ``request_id``. ``action`` holds the action as the
  runtime bound it (params unredacted: after a restart they are what runs), cleared when done;
  for an approver's edit, with the action first submitted beside it (``original``).
* ``running`` — the executor was still running when the caller got its 202.
* ``executing`` — approved and claimed by ``owner`` (one compare-and-swap from ``waiting``):
  from here on no other replica may run it, whatever happens.
* ``done`` — ``status`` and ``body`` are the final answer, as the running replica sent it.

A row whose ``owner`` process is gone (on this host), whose heartbeat is older than
``STALE_AFTER`` (elsewhere), or that its owner *released* (heartbeat ``RELEASED``: a replica
stopping gracefully hands its waits over), is an orphan. A ``waiting`` orphan is adopted by
one replica (compare-and-swap on ``owner``), which resumes the wait on the same request and
runs the action after approval — once, because only the ``waiting -> executing`` claimer runs
it. A ``running`` or ``executing`` orphan may have run: it is closed as ``interrupted`` and
never run again (the audit record says what the core knows).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

from aegis.core.action import Action
from aegis.runtime.approval.store import STALE_AFTER
from aegis.runtime.audit.interrupted import current_owner, owner_gone

_meta = MetaData()
executions_table = Table(
    "aegis_server_execution",
    _meta,
    Column("id", String(32), primary_key=True),
    Column("key_name", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("request_id", String(32)),
    Column("action", Text),
    Column("owner", String(255), nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("status", Integer),
    Column("body", Text),
)
Index("ix_aegis_server_execution_state", executions_table.c.state)

WAITING, RUNNING, EXECUTING, DONE = "waiting", "running", "executing", "done"
OWNER = current_owner()


def _renew_owner() -> None:
    """A forked child (a pre-forking server's worker) is another process: its rows must not
    name the parent, or they would be adopted as orphans once the parent exits, while the
    worker still runs them, and a worker that dies would leave rows its live parent seems
    to hold."""
    global OWNER
    OWNER = current_owner()


os.register_at_fork(after_in_child=_renew_owner)
#: The heartbeat of a row its owner let go: any replica may adopt it at once.
RELEASED = -1.0
_T = executions_table.c
_HELD = _T.heartbeat_at >= 0


def _fields(action: Action) -> dict[str, Any]:
    return {
        "type": action.type,
        "target": action.target,
        "params": action.params,
        "description": action.description,
        "agent_id": action.agent_id,
        "session_id": action.session_id,
    }


def action_json(action: Action, original: Action | None = None) -> str:
    """The action; ``original``: the one first submitted, when ``action`` is an edit of it."""
    fields = _fields(action)
    if original is not None:
        fields["original"] = _fields(original)
    return json.dumps(fields, default=str, ensure_ascii=False)


def original_from_json(text: str) -> Action | None:
    found = json.loads(text).get("original")
    return None if found is None else _action(found)


def action_from_json(text: str) -> Action:
    return _action(json.loads(text))


def _action(d: dict[str, Any]) -> Action:
    return Action(
        d["type"],
        d["target"],
        params=d.get("params") or {},
        description=d.get("description") or "",
        agent_id=d.get("agent_id"),
        session_id=d.get("session_id"),
    )


def orphaned(row: dict[str, Any], now: float) -> bool:
    beat = float(row["heartbeat_at"])
    gone = owner_gone(row["owner"])
    return beat < 0 or gone is True or (gone is None and now - beat > STALE_AFTER)


class Executions:
    """The rows, one short transaction per call (call from a worker thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _meta.create_all(engine)

    def begin(
        self,
        execution_id: str,
        key_name: str,
        state: str,
        *,
        request_id: str | None = None,
        action: Action | None = None,
    ) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                insert(executions_table).values(
                    id=execution_id,
                    key_name=key_name,
                    state=state,
                    request_id=request_id,
                    action=action_json(action) if action is not None else None,
                    owner=OWNER,
                    heartbeat_at=now,
                    created_at=now,
                )
            )

    def wait_on(
        self,
        execution_id: str,
        request_id: str,
        action: Action | None,
        original: Action | None = None,
    ) -> None:
        """A later round (the policy asked for more): the row now waits on this request."""
        values: dict[str, Any] = {"request_id": request_id, "state": WAITING}
        if action is not None:
            values["action"] = action_json(action, original)
        with self.engine.begin() as conn:
            conn.execute(
                update(executions_table)
                .where(_T.id == execution_id, _T.owner == OWNER, _T.state != DONE)
                .values(**values)
            )

    def _mine(self, execution_id: str, **values: Any) -> bool:
        """Update this process's held ``waiting`` row; False if it was released or adopted."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(executions_table)
                .where(_T.id == execution_id, _T.owner == OWNER, _T.state == WAITING, _HELD)
                .values(**values)
            )
            return bool(done.rowcount == 1)

    def claim(self, execution_id: str) -> bool:
        """``waiting -> executing`` for this process; False if another replica owns it now."""
        return self._mine(execution_id, state=EXECUTING, heartbeat_at=time.time())

    def still_mine(self, execution_id: str) -> bool:
        """Whether this process still owns the wait (before it records a refusal)."""
        return self._mine(execution_id, heartbeat_at=time.time())

    def release(self, execution_id: str) -> bool:
        """Let another replica adopt the wait now; False if it is not a wait held here."""
        return self._mine(execution_id, heartbeat_at=RELEASED)

    def finish(self, execution_id: str, status: int, body: dict[str, Any]) -> bool:
        """Store the final answer (only the owner may); the action's params are dropped."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(executions_table)
                .where(_T.id == execution_id, _T.owner == OWNER, _T.state != DONE)
                .values(
                    state=DONE,
                    status=status,
                    body=json.dumps(body, default=str),
                    action=None,
                    finished_at=time.time(),
                )
            )
            return bool(done.rowcount == 1)

    def heartbeat(self, ids: list[str]) -> None:
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(executions_table)
                .where(_T.id.in_(ids), _T.owner == OWNER, _T.state != DONE, _HELD)
                .values(heartbeat_at=time.time())
            )

    def get(self, execution_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(executions_table).where(_T.id == execution_id)).first()
        return None if row is None else dict(row._mapping)

    def orphans(self, now: float) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(executions_table).where(_T.state != DONE, _T.owner != OWNER)
            ).all()
        return [dict(r._mapping) for r in rows if orphaned(dict(r._mapping), now)]

    def adopt(self, row: dict[str, Any]) -> bool:
        """Take over an orphan (compare-and-swap on its owner): exactly one adopter wins."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(executions_table)
                .where(_T.id == row["id"], _T.owner == row["owner"], _T.state == row["state"])
                .values(owner=OWNER, heartbeat_at=time.time())
            )
            return bool(done.rowcount == 1)

    def purge(self, finished_before: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(executions_table).where(_T.state == DONE, _T.finished_at < finished_before)
            )
