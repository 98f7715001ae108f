"""How a wait outlives the replica it started on: durable rows, handover and adoption.

Kept apart from ``service`` because it is one protocol between replicas, read and changed
as a whole: the service runs jobs; this is what makes a job that must be waited for a row in
the database (``executions``), so any replica answers its status URL, and a replica that dies
while it waits leaves it to another, which resumes the same approval request and runs the
action at most once.

Stopping (SIGTERM, or the app's shutdown) hands waits over instead of ending them: each
``waiting`` row is released for another replica (or this one restarted) to adopt, its local
wait is cancelled with ``HANDOVER`` (the request stays pending, nothing is recorded here), and
its long-polls answer ``202`` at once: poll again, wherever. Whoever holds the row records
the action: a replica that finds its wait adopted (it fell silent for ``STALE_AFTER``) stops
the same way instead of recording a second, refused, outcome.

``ReplicaHandover`` is a mixin of ``Service``: the state it reads is the service's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, cast

import attrs

from aegis.core.action import Action, with_identity
from aegis.core.approval import ApprovalDecision
from aegis.core.decision import PolicyDecision
from aegis.runtime.approval.flow import HANDOVER
from aegis.runtime.approval.rules import apply_edits
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.audit import AuditStore
from aegis.runtime.engine import Runtime
from aegis.runtime.hooks import RuntimeHooks, maybe_await
from aegis.server.executions import (
    RUNNING,
    WAITING,
    Executions,
    action_from_json,
    original_from_json,
)
from aegis.server.jobs import CURRENT_JOB, Job

if TYPE_CHECKING:
    from aegis.server.service import Service

log = logging.getLogger("aegis.server")


class ReplicaHandover:
    """The claim gate, draining, adoption of orphans and heartbeats of ``Service``."""

    # The service's state this mixin works on (set in ``Service.__init__``).
    runtime: Runtime
    store: AuditStore
    jobs: dict[str, Job]
    executions: Executions
    draining: asyncio.Event
    _beat_at: float
    _loop: asyncio.AbstractEventLoop | None
    _news_tasks: set[asyncio.Future[Any]]

    if TYPE_CHECKING:

        async def tell(self, payload: str) -> None: ...

        def _launch(self, job: Job) -> None: ...

    def _install_claim(self) -> None:
        """The ``on_approval`` gate: a durable job runs only after it claimed its row
        (``waiting -> executing``), and records a refusal only while the row is still its own;
        one whose row another replica adopted stops here, handed over, recording nothing."""
        hooks = self.runtime.hooks or RuntimeHooks()
        theirs = hooks.on_approval

        async def claim(action: Action, decision: PolicyDecision, approval: Any) -> None:
            if theirs is not None:
                await maybe_await(theirs(action, decision, approval))
            job = CURRENT_JOB.get()
            if job is None or not job.durable or not isinstance(approval, ApprovalDecision):
                return
            check = self.executions.claim if approval.approved else self.executions.still_mine
            async with job.lock:  # drain() decides under the same lock
                if job.handed_over or not await asyncio.to_thread(check, job.id):
                    job.handed_over = True
                    raise asyncio.CancelledError(HANDOVER)
                job.claimed = approval.approved

        self.runtime.hooks = attrs.evolve(hooks, on_approval=claim)

    def drain_soon(self) -> None:
        """``drain`` from a signal handler (uvicorn's, on SIGTERM): at once, not after the
        open connections (long-polls among them) have ended."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        task = asyncio.ensure_future(self.drain())
        self._news_tasks.add(task)
        task.add_done_callback(self._news_tasks.discard)

    async def drain(self) -> None:
        """Hand every wait of this replica over (see the module docstring). Idempotent."""
        self.draining.set()
        handed: list[asyncio.Task[Any]] = []
        for job in list(self.jobs.values()):
            task = job.task
            if task is None or task.done() or not job.durable or not job.request_ids:
                continue
            async with job.lock:
                if job.claimed or job.closing or job.handed_over:
                    continue
                try:
                    released = await asyncio.to_thread(self.executions.release, job.id)
                except Exception:  # the database is away: the wait ends as before, refused
                    log.exception("could not release execution %s", job.id)
                    continue
                job.handed_over = released
            if released:
                log.warning("execution %s: handed over (request %s)", job.id, job.request_ids[-1])
                task.cancel(HANDOVER)
                handed.append(task)
        await asyncio.gather(*handed, return_exceptions=True)
        for job in list(self.jobs.values()):
            if job.handed_over:
                await self.tell(f"execution:{job.id}")  # adopt it now, not at the next poll

    async def waiting_on(self, job: Job, request: ApprovalRequest) -> None:
        """The job waits for ``request``: make it a row (with the action as the runtime bound
        it, so a replica resuming it presents the same digest), or move the row to it.

        A later round is for the action as the approver edited it (the policy asked for more
        after the edit): that action is the previous one with the previous request's edits,
        and it is what the row keeps, so an adopter resumes the request it was made for. The
        row keeps the action as first submitted beside it: the adopter closes that one "as
        edited" once the edit is approved, as this replica would have."""
        assert job.action is not None
        bound = with_identity(job.action, request.agent_id, request.session_id)
        if bound.digest != request.digest and job.request_ids:
            before = await self.store.approvals.run(self.store.approvals.get, job.request_ids[-1])
            if before.edits:
                if job.original is None:  # an approval of the edit closes it as edited
                    job.original = bound
                bound = bound.with_params(apply_edits(bound.params, before.edits))
        keep = bound if bound.digest == request.digest else None
        if keep is not None:
            job.action = keep
        async with job.lock:
            if job.durable:
                await asyncio.to_thread(
                    self.executions.wait_on, job.id, request.id, keep, job.original
                )
            else:
                await asyncio.to_thread(
                    self.executions.begin,
                    job.id,
                    job.key_name,
                    WAITING,
                    request_id=request.id,
                    action=keep,
                )
                job.durable = True

    async def still_running(self, job: Job) -> None:
        """The caller gets a 202 for a job that runs on: make it a row others can answer."""
        async with job.lock:
            if job.durable or job.closing:
                return
            await asyncio.to_thread(self.executions.begin, job.id, job.key_name, RUNNING)
            job.durable = True

    async def adopt_orphans(self, *, launch: bool = True) -> list[Job]:
        """Take over rows whose replica died: resume the waiting ones, close the others."""
        resumed: list[Job] = []
        now = time.time()
        for row in await asyncio.to_thread(self.executions.orphans, now):
            if not await asyncio.to_thread(self.executions.adopt, row):
                continue  # another replica took it a moment ago
            rid, text = row["request_id"], row["action"]
            if row["state"] == WAITING and rid and text:
                await self.store.approvals.run(
                    self.store.approvals.adopt, rid, previous_owner=row["owner"]
                )  # None: it settled meanwhile; the resumed wait reads what it became
                job = Job(
                    row["id"],
                    row["key_name"],
                    action=action_from_json(text),
                    original=original_from_json(text),
                    service=cast("Service", self),  # the mixin's host
                    durable=True,
                    request_ids=[rid],
                )
                log.warning("execution %s: its replica died; resuming request %s", job.id, rid)
                resumed.append(job)
                if launch:
                    self._launch(job)
                continue
            body = {
                "execution_id": row["id"],
                "status": "interrupted",
                "executed": None,
                "audit_id": None,
                "error": "interrupted",
                "reason": (
                    "the replica handling it stopped while it "
                    + ("could not be resumed" if row["state"] == WAITING else "ran")
                    + "; it is not run again (see the audit log for what happened)"
                ),
            }
            await asyncio.to_thread(self.executions.finish, row["id"], 200, body)
        return resumed

    async def beat(self, now: float) -> None:
        """Heartbeat the rows of this replica's unfinished durable jobs."""
        if now < self._beat_at:
            return
        self._beat_at = now + 5.0
        ids = [j.id for j in self.jobs.values() if j.durable and not j.closing]
        await asyncio.to_thread(self.executions.heartbeat, ids)
