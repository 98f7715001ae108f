"""Where stateful conditions get their history: the ``aegis_limit_usage`` table of the audit DB.

Two readers over one table:

* a *snapshot* (``read_state``), read without a lock, for the decision an action is asked
  about, approved under and shown to hooks. It can only be behind (another process may be
  writing), so it is advice. On a database server (PostgreSQL) it is read on a worker thread
  (``decide``): a slow or lock-blocked read holds up its own action, never the event loop;
* the *final* evaluation, inside the write-ahead transaction (``begin_limited``): the audit
  writer holds the database's write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``SELECT ...
  FOR UPDATE`` on the chain head), so every process and replica is serialised; the policy is
  evaluated with a state read through that transaction's cursor, the usage the decision
  consumes is inserted, and the intent is written with the final decision, all in one commit.
  Rows written earlier in the same group-commit batch are visible to later ones (same
  transaction), so 100 concurrent actions against ``max: 10`` let exactly 10 run.

If the final decision is stricter than the one the action went through (a limit was reached
meanwhile), nothing is written in that transaction and the action is recorded as blocked, not
run, with both decisions' reasons. Nothing is refunded when a begun action fails.

Before a retry the policy looks again (``decide_retry``): on a snapshot, off the loop as
``decide`` is, without the action's own usage rows (a retry is the same action, counted once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.core.risk import Approval
from aegis.core.stateful import LimitState, Usage
from aegis.runtime.audit.record import derive_decision, intent_payload, intent_values, now_iso
from aegis.runtime.audit.writer import DECIDE, INTENT, SideWrite, Statements, WriteOp, _convert
from aegis.runtime.stops import blocked_decision, record_stop

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.engine import Runtime
    from aegis.runtime.shadow import ShadowVerdict

log = logging.getLogger("aegis.limits")

_WHERE = "FROM aegis_limit_usage WHERE limit_id = ? AND key = ? AND at > ?"
_RAW = {
    "count": f"SELECT COUNT(*) {_WHERE}",
    "total": f"SELECT COALESCE(SUM(amount), 0) {_WHERE}",
    "first": f"SELECT MIN(at) {_WHERE}",
    "held": "SELECT COUNT(*) FROM aegis_limit_usage"
    " WHERE limit_id = ? AND key = ? AND at = ? AND amount = ?",
    "insert": "INSERT INTO aegis_limit_usage (limit_id, key, at, amount) VALUES (?, ?, ?, ?)",
    "prune": "DELETE FROM aegis_limit_usage WHERE limit_id = ? AND at < ?",
}
#: Prune a limit's expired rows once per this many writes of it by this process.
PRUNE_EVERY = 256

_SQL_CACHE: dict[str, dict[str, str]] = {}


def _sql(paramstyle: str) -> dict[str, str]:
    found = _SQL_CACHE.get(paramstyle)
    if found is None:
        found = _SQL_CACHE[paramstyle] = {k: _convert(v, paramstyle) for k, v in _RAW.items()}
    return found


class DatabaseLimitState(LimitState):
    """Reads through one DBAPI cursor (the write transaction's, or a snapshot's)."""

    def __init__(self, cursor: Any, paramstyle: str) -> None:
        super().__init__()
        self._cur = cursor
        self._sql = _sql(paramstyle)

    def _one(self, name: str, limit_id: str, key: str, since: float) -> Any:
        self._cur.execute(self._sql[name], (limit_id, key, since))
        row = self._cur.fetchone()
        return None if row is None else row[0]

    def count(self, limit_id: str, key: str, since: float) -> int:
        return int(self._one("count", limit_id, key, since) or 0)

    def total(self, limit_id: str, key: str, since: float) -> float:
        return float(self._one("total", limit_id, key, since) or 0.0)

    def first_after(self, limit_id: str, key: str, after: float) -> float | None:
        found = self._one("first", limit_id, key, after)
        return None if found is None else float(found)

    def held(self, limit_id: str, key: str, at: float, amount: float) -> int:
        """How many rows equal to this one the table holds."""
        self._cur.execute(self._sql["held"], (limit_id, key, at, amount))
        row = self._cur.fetchone()
        return 0 if row is None else int(row[0])

    def write_pending(self, windows: dict[str, float]) -> None:
        """Insert what the evaluation consumed; now and then drop rows past their window."""
        rows: Sequence[Usage] = self.pending
        if not rows:
            return
        self._cur.executemany(self._sql["insert"], list(rows))
        for limit_id, _, at, _ in rows:
            base = limit_id.partition("#")[0]
            seen = _WRITES.get(base, 0) + 1
            _WRITES[base] = seen
            window = windows.get(base)
            if window is not None and (seen - 1) % PRUNE_EVERY == 0:
                self._cur.execute(self._sql["prune"], (limit_id, at - window))
        self.pending = []


_WRITES: dict[str, int] = {}
_PENDING: set[asyncio.Future[Any]] = set()


def windows_of(policy: Any) -> dict[str, float]:
    """limit id -> window, for pruning (empty for a policy source that does not say)."""
    out: dict[str, float] = {}
    for source in getattr(policy, "levels", None) or [("", policy)]:
        inner = source[1]
        inner = getattr(inner, "policy", inner)  # a PolicyWatcher
        for check in getattr(inner, "limits", ()):
            out[check.limit_id] = check.window
    return out


def read_state(store: AuditStore) -> tuple[DatabaseLimitState | None, Callable[[], None]]:
    """A snapshot state on a pooled connection and its closer; ``(None, noop)`` when the store
    is not open (stateful conditions are then unknown, which fails closed)."""
    if not store.is_open:
        return None, _noop
    lock = store.read_lock()  # an in-memory database is one connection, the writer's
    lock.__enter__()
    try:
        engine = store.engine
        raw = engine.raw_connection()
    except BaseException:
        lock.__exit__(None, None, None)
        raise
    cur = raw.cursor()

    def close() -> None:
        try:
            cur.close()
            raw.close()
        finally:
            lock.__exit__(None, None, None)

    return DatabaseLimitState(cur, engine.dialect.paramstyle), close


def _noop() -> None:
    return None


def snapshot_evaluate(policy: Any, action: Action, store: AuditStore) -> PolicyDecision:
    """The policy's decision on the history committed so far (advice; see the module doc)."""
    state, close = read_state(store)
    try:
        if state is None:
            return policy.evaluate(action)  # type: ignore[no-any-return]
        return policy.evaluate(action, state=state)  # type: ignore[no-any-return]
    finally:
        close()


def reads_a_server(runtime: Runtime) -> bool:
    """Whether deciding reads a snapshot from a database server (a stateful policy on anything
    but SQLite): network round trips, maybe a lock wait, which must not hold up the event loop.
    SQLite's snapshot is a local read that costs less than the hop to a thread."""
    return bool(getattr(runtime._policy, "stateful", False)) and not runtime.audit.url.startswith(
        "sqlite"
    )


async def decide(runtime: Runtime, action: Action) -> PolicyDecision:
    """``runtime._decide`` for a coroutine: on a worker thread when it reads a database server
    (the same decision, made the same way; the final one is still made in the write)."""
    if reads_a_server(runtime):
        return await asyncio.to_thread(runtime._decide, action)
    return runtime._decide(action)


async def decide_retry(
    runtime: Runtime, consumed: Sequence[Usage], action: Action
) -> PolicyDecision:
    """The policy's second look before a retry (``execution.execute_and_verify``), off the loop
    as ``decide`` is. A retry is the same action, counted once when its record was written
    (``consumed``: the usage that write inserted), so that use is not counted again: the look
    asks what the first decision asked, on the history as it is now."""
    if not consumed:
        return await decide(runtime, action)
    if reads_a_server(runtime):
        return await asyncio.to_thread(_second_look, runtime, consumed, action)
    return _second_look(runtime, consumed, action)


def _second_look(runtime: Runtime, consumed: Sequence[Usage], action: Action) -> PolicyDecision:
    try:
        state, close = read_state(runtime.audit)
    except Exception as exc:  # no connection: the limit cannot be read, so nothing runs
        return _unreadable(action, exc)
    try:
        if state is None:
            return runtime._decide(action)  # the store is closed: limits unknown, fail closed
        try:
            seen = _WithoutOwnUse(state, consumed)
        except Exception as exc:
            return _unreadable(action, exc)
        return runtime._decide(action, seen)
    finally:
        close()


def _unreadable(action: Action, exc: Exception) -> PolicyDecision:
    return blocked_decision(action, f"policy evaluation failed: {type(exc).__name__}: {exc}")


class _WithoutOwnUse(LimitState):
    """A snapshot without one action's own usage rows: those the table still holds (matched by
    value), so a row already gone (pruned, deleted) is not subtracted again, which would make
    the answer laxer than the table."""

    def __init__(self, inner: DatabaseLimitState, own: Sequence[Usage]) -> None:
        super().__init__()
        self._inner = inner
        self._own: list[Usage] = []
        for row, n in Counter(own).items():
            self._own += [row] * min(n, inner.held(*row))

    def _mine(self, limit_id: str, key: str, since: float) -> list[Usage]:
        return [r for r in self._own if r[0] == limit_id and r[1] == key and r[2] > since]

    def count(self, limit_id: str, key: str, since: float) -> int:
        return self._inner.count(limit_id, key, since) - len(self._mine(limit_id, key, since))

    def total(self, limit_id: str, key: str, since: float) -> float:
        spent = self._inner.total(limit_id, key, since)
        return max(0.0, spent - sum(r[3] for r in self._mine(limit_id, key, since)))

    def first_after(self, limit_id: str, key: str, after: float) -> float | None:
        inner = self._inner
        at = inner.first_after(limit_id, key, after)
        while at is not None:
            before = math.nextafter(at, -math.inf)
            there = inner.count(limit_id, key, before) - inner.count(limit_id, key, at)
            mine = sum(1 for r in self._mine(limit_id, key, before) if r[2] == at)
            if there > mine:
                return at  # another action's row at this time
            at = inner.first_after(limit_id, key, at)
        return None


def settle(
    decided: PolicyDecision, approval: ApprovalDecision | None, final: PolicyDecision
) -> str | None:
    """Why the final decision forbids running what was decided and approved, or None."""
    if final.approval is Approval.BLOCK:
        return f"blocked when its record was written: {final.reason}"
    if final.approval is Approval.APPROVE:
        covered = (
            approval is not None
            and approval.approved
            and decided.approval is Approval.APPROVE
            and final.matched_rule == decided.matched_rule
            and final.requirements == decided.requirements
        )
        if not covered:
            return (
                "when its record was written the policy asked for an approval it did not have"
                f" (a limit was reached since it was decided): {final.reason}"
            )
    return None


class _Outcome:
    __slots__ = ("consumed", "final", "interrupted", "refusal")

    def __init__(self) -> None:
        self.final: PolicyDecision | None = None
        self.refusal: str | None = None
        #: The usage rows written with the intent (``decide_retry`` leaves them out).
        self.consumed: tuple[Usage, ...] = ()
        #: What the final decision raised past ``Runtime._decide``'s ``Exception`` guard.
        self.interrupted: BaseException | None = None


async def begin_limited(
    runtime: Runtime,
    action: Action,
    decision: PolicyDecision,
    approval: ApprovalDecision | None,
    *,
    parent_id: int | None = None,
    note: str | None = None,
    detached: bool = False,
    shadow: ShadowVerdict | None = None,
    side_write: SideWrite | None = None,
) -> tuple[int, PolicyDecision, tuple[Usage, ...]] | Result:
    """``AuditStore.begin`` for a stateful policy: decide finally, count and write ahead in one
    transaction. Returns ``(audit_id, final decision, the usage rows written)``, or the audited
    ``Result`` of an action the final decision does not let run. ``side_write``: as for
    ``begin`` (written only with the row)."""
    store = runtime.audit
    outcome = _Outcome()
    windows = windows_of(runtime.policy)

    def decide(cur: Any, st: Statements) -> tuple[int, Any] | None:
        state = DatabaseLimitState(cur, st.paramstyle)
        outcome.interrupted = None  # a batch that failed is retried op by op: decided again
        try:
            final = runtime._decide(action, state)
        except BaseException as exc:  # Ctrl-C, SystemExit, a plugin's own: write nothing
            # On the writer thread nobody could handle it, and it would end the thread; the
            # caller records the stop and raises it (below), as for the snapshot decision.
            outcome.interrupted = exc
            return None
        outcome.final, outcome.refusal = final, settle(decision, approval, final)
        if outcome.refusal is not None:
            return None
        outcome.consumed = tuple(state.pending)
        state.write_pending(windows)
        values = intent_values(
            action,
            final,
            approval,
            derive_decision(final, approval),
            parent_id,
            store.redactor,
            now_iso(),
            shadow,
        )
        return INTENT, intent_payload(values)

    op = WriteOp(DECIDE, decide)
    op.detached = detached
    op.side = side_write
    written = await store.write_ahead(
        op,
        action,
        decision,
        approval,
        if_not_written=functools.partial(_record_cancelled_stop, store, action, decision, approval),
    )
    interrupted, final = outcome.interrupted, outcome.final
    if interrupted is not None or written is None or final is None:
        if interrupted is not None:
            reason = f"the final decision was interrupted: {type(interrupted).__name__}; not run"
            final = blocked_decision(action, reason)
        else:
            reason = outcome.refusal or "the final decision could not be made"
        stopped = await record_stop(
            runtime,
            action,
            final or decision,
            ResultStatus.BLOCKED,
            reason,
            approval=approval,
            parent_id=parent_id,
            note=note,
            shadow=shadow,
        )
        if interrupted is not None:
            raise interrupted  # recorded; now the caller's, as for the snapshot decision
        return stopped
    return written[0], final, outcome.consumed


def _record_cancelled_stop(
    store: AuditStore,
    action: Action,
    decision: PolicyDecision,
    approval: ApprovalDecision | None,
) -> None:
    """Refused in the transaction while our caller was cancelled: record the stop it cannot."""
    stopped = Result(
        action,
        ResultStatus.BLOCKED,
        decision=decision,
        approval=approval,
        reason="cancelled while its final decision was being made; the action did not run",
    )
    task = asyncio.ensure_future(store.record(stopped))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
