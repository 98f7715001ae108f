"""What the server does with an action, independent of HTTP: run it, or authorise it.

With an executor, ``/execute`` is ``Runtime.run_one`` in a background task (a job), so a
request that waits for a human does not hold the HTTP call: the caller gets the job's status
URL and polls it. Without one, the job is ``Runtime.authorize``: the record is begun, the
caller acts and reports, and an ``Outcomes`` row remembers who owes the report and until
when. A record nobody reports is closed as failed, "outcome not reported" — never as a
success nobody saw. Deciding, approving and auditing stay in the core runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from typing import Any

import attrs
from sqlalchemy import Column, Float, MetaData, String, Table, create_engine, delete, insert, select
from sqlalchemy.engine import Engine

from aegis.core.action import Action
from aegis.core.result import Result, ResultStatus
from aegis.errors import AuditError
from aegis.runtime.approval_channels import QueueChannel, Responder
from aegis.runtime.approval_store import ApprovalRequest
from aegis.runtime.audit import AuditStore
from aegis.runtime.engine import Authorization, Runtime

log = logging.getLogger("aegis.server")

_meta = MetaData()
outcomes_table = Table(
    "aegis_server_outcomes",
    _meta,
    Column("audit_id", String(32), primary_key=True),
    Column("key_name", String(64), nullable=False),
    Column("deadline", Float, nullable=False),
    Column("created_at", Float, nullable=False),
)

REPORTABLE = ("success", "failed", "skipped")


@attrs.define
class Job:
    """One ``/execute`` call in progress on this replica."""

    id: str
    key_name: str
    task: asyncio.Task[Result | Authorization] | None = None
    request_ids: list[str] = attrs.field(factory=list)
    waiting: asyncio.Event = attrs.field(factory=asyncio.Event)
    done: asyncio.Event = attrs.field(factory=asyncio.Event)
    outcome: Result | Authorization | None = None
    failure: str | None = None
    finished_at: float | None = None


_CURRENT_JOB: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "aegis_server_job", default=None
)


class ServerQueueChannel(QueueChannel):
    """The queue channel, telling the job that started the action which request it waits on."""

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        await super().notify(request, responder)
        job = _CURRENT_JOB.get()
        if job is not None:
            job.request_ids.append(request.id)
            job.waiting.set()


class Outcomes:
    """Authorised records whose caller still owes the outcome, shared by all replicas."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        _meta.create_all(self.engine)

    def owe(self, audit_id: int, key_name: str, deadline: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(outcomes_table).values(
                    audit_id=str(audit_id),
                    key_name=key_name,
                    deadline=deadline,
                    created_at=time.time(),
                )
            )

    def owner(self, audit_id: int) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(outcomes_table.c.key_name).where(outcomes_table.c.audit_id == str(audit_id))
            ).first()
        return None if row is None else str(row[0])

    def claim(self, audit_id: int, *, overdue_at: float | None = None) -> bool:
        """Take the duty to finish a record; exactly one claimant (report or reaper) wins."""
        stmt = delete(outcomes_table).where(outcomes_table.c.audit_id == str(audit_id))
        if overdue_at is not None:
            stmt = stmt.where(outcomes_table.c.deadline < overdue_at)
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def overdue(self, now: float) -> list[int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outcomes_table.c.audit_id).where(outcomes_table.c.deadline < now)
            ).all()
        return [int(r[0]) for r in rows]

    def dispose(self) -> None:
        self.engine.dispose()


class Service:
    """The runtime, the store, this replica's jobs and the outcome bookkeeping."""

    def __init__(
        self,
        runtime: Runtime,
        store: AuditStore,
        *,
        authorize_only: bool,
        outcome_timeout: float = 300.0,
        job_ttl: float = 600.0,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.authorize_only = authorize_only
        self.outcome_timeout = outcome_timeout
        self.job_ttl = job_ttl
        self.jobs: dict[str, Job] = {}
        self.outcomes = Outcomes(store.url)
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.runtime.open()
        self._reaper = asyncio.create_task(self._reap_forever())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for job in list(self.jobs.values()):
            if job.task is not None and not job.task.done():
                job.task.cancel()  # the runtime records a cancelled action as not run
        await asyncio.gather(
            *(j.task for j in self.jobs.values() if j.task is not None), return_exceptions=True
        )
        await self.runtime.close()
        await self.store.close()
        self.outcomes.dispose()

    # -- jobs --------------------------------------------------------------------------------

    def start_job(self, action: Action, key_name: str) -> Job:
        job = Job(uuid.uuid4().hex, key_name)
        token = _CURRENT_JOB.set(job)
        try:
            job.task = asyncio.create_task(self._run(job, action))
        finally:
            _CURRENT_JOB.reset(token)
        self.jobs[job.id] = job
        return job

    async def _run(self, job: Job, action: Action) -> Result | Authorization:
        try:
            if self.authorize_only:
                out = await self.runtime.authorize(action)
                if isinstance(out, Authorization):
                    deadline = time.time() + self.outcome_timeout
                    await asyncio.to_thread(self.outcomes.owe, out.audit_id, job.key_name, deadline)
            else:
                out = await self.runtime.run_one(action)
            job.outcome = out
            return out
        except Exception as exc:  # the runtime recorded what it could; the caller must know
            log.exception("job %s failed", job.id)
            job.failure = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            job.finished_at = time.time()
            job.done.set()

    async def first_news(self, job: Job, timeout: float) -> None:
        """Wait until the job is done or waits for a human (at most ``timeout``)."""
        waits: list[asyncio.Task[Any]] = [
            asyncio.create_task(job.done.wait()),
            asyncio.create_task(job.waiting.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def until_done(self, job: Job, timeout: float) -> None:
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(job.done.wait()), timeout)

    def forget_old_jobs(self, now: float) -> None:
        for jid, job in list(self.jobs.items()):
            if job.finished_at is not None and now - job.finished_at > self.job_ttl:
                del self.jobs[jid]

    # -- authorise-then-report ---------------------------------------------------------------

    async def report(self, audit_id: int, result: Result) -> bool:
        """Finish an authorised record; False when nobody owes it (reported, closed, unknown)."""
        if not await asyncio.to_thread(self.outcomes.claim, audit_id):
            return False
        await self.store.finish(audit_id, result)
        return True

    async def reap_once(self, now: float | None = None) -> int:
        at = time.time() if now is None else now
        closed = 0
        for audit_id in await asyncio.to_thread(self.outcomes.overdue, at):
            if not await asyncio.to_thread(self.outcomes.claim, audit_id, overdue_at=at):
                continue  # reported, or another replica closed it, a moment ago
            record = await asyncio.to_thread(self.store.get, audit_id)
            if record is None or record.result != "pending":
                continue
            unreported = Result(
                Action(record.action_type, record.target),
                ResultStatus.FAILED,
                error="outcome not reported",
                reason=(
                    f"authorised, but the caller reported no outcome within "
                    f"{self.outcome_timeout:g} s; whether the action ran is unknown"
                ),
            )
            try:
                await self.store.finish(audit_id, unreported)
                closed += 1
            except AuditError:
                log.exception("could not close unreported record %s", audit_id)
        self.forget_old_jobs(at)
        return closed

    async def _reap_forever(self, every: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.reap_once()
            except Exception:
                log.exception("outcome reaper failed; retrying")
