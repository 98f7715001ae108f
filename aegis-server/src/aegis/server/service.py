"""What the server does with an action, independent of HTTP: run it, or authorise it.

With an executor, ``/execute`` is ``Runtime.run_one`` in a background task (a job), so a
request that waits for a human does not hold the HTTP call: the caller gets the job's status
URL and polls it. Without one, the job is ``Runtime.authorize``: the record is begun, the
caller acts and reports, and an ``Outcomes`` row remembers who owes the report and until
when. A record nobody reports is closed as failed, "outcome not reported" — never as a
success nobody saw. Deciding, approving and auditing stay in the core runtime.

A job that must be waited for is also a row in the database (``executions``), handed over
between replicas when one stops or dies: ``aegis.server.handover`` (a mixin of ``Service``).
Executions already running when the replica stops get ``GRACE`` seconds to finish before
they are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from aegis.core.action import Action
from aegis.core.result import Result, ResultStatus
from aegis.errors import AuditError
from aegis.runtime.approval.flow import WAKERS, handed_over, resuming
from aegis.runtime.approval.wait import ON_WAIT
from aegis.runtime.audit import AuditStore
from aegis.runtime.engine import Authorization, Runtime
from aegis.runtime.policy_versions import VersionedPolicy
from aegis.runtime.stops import record_stop
from aegis.server.executions import Executions
from aegis.server.handover import ReplicaHandover
from aegis.server.jobs import CURRENT_JOB, Job, on_wait
from aegis.server.notify import Notifier
from aegis.server.notify import usable as notify_usable
from aegis.server.outcomes import NotOwed, Outcomes
from aegis.server.views import final_view

log = logging.getLogger("aegis.server")

#: Seconds a stopping replica gives executions already running (not waiting) to finish.
GRACE = 10.0


def _no_news(news: asyncio.Future[None]) -> None:
    if not news.done():
        news.set_result(None)


class Service(ReplicaHandover):
    """The runtime, the store, this replica's jobs and the outcome bookkeeping."""

    def __init__(
        self,
        runtime: Runtime,
        store: AuditStore,
        *,
        authorize_only: bool,
        outcome_timeout: float = 300.0,
        job_ttl: float = 600.0,
        listen: bool = True,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.authorize_only = authorize_only
        self.outcome_timeout = outcome_timeout
        self.job_ttl = job_ttl
        self.jobs: dict[str, Job] = {}
        self.outcomes = Outcomes(store.url)
        self.executions = Executions(self.outcomes.engine)
        self._reaper: asyncio.Task[None] | None = None
        self._beat_at = 0.0
        self._purge_at = 0.0
        self._install_claim()
        self.notifier: Notifier | None = (
            Notifier(store.url, self.outcomes.engine, self._news)
            if listen and notify_usable(store.url)
            else None
        )
        #: Long-polls of other replicas' executions, woken by ``execution:<id>`` news.
        self.execution_news: dict[str, asyncio.Event] = {}
        self._news_tasks: set[asyncio.Future[Any]] = set()
        #: Set once the replica stops: long-polls and live tails answer at once.
        self.draining = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        # Orphans are adopted before the store opens: opening reaps requests whose waiter
        # died, and an adopted request has a live waiter again (this process).
        self._loop = asyncio.get_running_loop()
        resumed = await self.adopt_orphans(launch=False)
        await self.runtime.open()
        if self.notifier is not None:
            self.notifier.start()
        for job in resumed:
            self._launch(job)
        self._reaper = asyncio.create_task(self._reap_forever())

    # -- news between replicas (PostgreSQL NOTIFY; polling covers everything without it) ------

    def _news(self, payload: str) -> None:
        kind, _, ref = payload.partition(":")
        if kind == "approval":
            WAKERS.poke(ref)
        elif kind == "execution":
            event = self.execution_news.get(ref)
            if event is not None:
                event.set()
        elif kind == "policy":
            source = self.runtime.policy
            if isinstance(source, VersionedPolicy):
                task = asyncio.ensure_future(asyncio.to_thread(source.refresh))
                self._news_tasks.add(task)
                task.add_done_callback(self._news_tasks.discard)

    async def tell(self, payload: str) -> None:
        """Tell the other replicas (no-op without PostgreSQL)."""
        if self.notifier is not None:
            await self.notifier.send(payload)

    async def stop(self) -> None:
        await self.drain()
        if self._reaper is not None:
            self._reaper.cancel()
        running = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        if running:  # executions under way get a moment to finish
            await asyncio.wait(running, timeout=GRACE)
        if self.notifier is not None:
            await asyncio.to_thread(self.notifier.stop)
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
        job = Job(os.urandom(16).hex(), key_name, action=action, service=self)
        self._launch(job)
        return job

    def _launch(self, job: Job) -> None:
        token = CURRENT_JOB.set(job)
        observing = ON_WAIT.set(on_wait)
        try:
            job.task = asyncio.create_task(self._run(job))
        finally:
            ON_WAIT.reset(observing)
            CURRENT_JOB.reset(token)
        self.jobs[job.id] = job

    async def _run(self, job: Job) -> Result | Authorization | None:
        assert job.action is not None
        try:
            if job.durable and job.request_ids:  # adopted: continue the same request
                with resuming(job.request_ids[-1], job.original):
                    out = await self._once(job, job.action)
            else:
                out = await self._once(job, job.action)
            job.outcome = out
            return out
        except asyncio.CancelledError as exc:
            if not (job.handed_over and handed_over(exc)):
                raise
            self.jobs.pop(job.id, None)  # its status is the row's now, on any replica
            return None
        except Exception as exc:  # the runtime recorded what it could; the caller must know
            log.exception("job %s failed", job.id)
            job.failure = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            job.finished_at = time.time()
            await self._close(job)
            job.done.set()
            job.tell()

    async def _once(self, job: Job, action: Action) -> Result | Authorization:
        if not self.authorize_only:
            return await self.runtime.run_one(action)
        owed = self.outcomes.owe(job.key_name, self.outcome_timeout)
        try:
            return await self.runtime.authorize(action, side_write=owed)
        except AuditError as exc:  # neither the pending row nor who owes it was written
            bound = self.runtime.bind(action)
            why = f"its authorisation could not be recorded, so it is not authorised: {exc}"
            return await record_stop(
                self.runtime, bound, self.runtime.evaluate(bound), ResultStatus.BLOCKED, why
            )

    async def _close(self, job: Job) -> None:
        async with job.lock:
            job.closing = True
            durable = job.durable and not job.handed_over
        if not durable:
            return
        status, body = final_view(job.id, job.outcome, job.failure, self.outcome_timeout)
        try:
            await asyncio.to_thread(self.executions.finish, job.id, status, body)
        except Exception:  # the local answer stands; other replicas see it as orphaned later
            log.exception("could not store the result of execution %s", job.id)
            return
        await self.tell(f"execution:{job.id}")

    async def first_news(self, job: Job, timeout: float) -> None:
        """Wait until the job is done or waits for a human (at most ``timeout``).

        On the hot path (an auto action answered at once): no task beyond the job's own, and
        one future and one timer handle (see ``Job.news``)."""
        if job.told:
            return
        loop = asyncio.get_running_loop()
        news = job.news = loop.create_future()
        timer = loop.call_later(timeout, _no_news, news)
        try:
            await news
        finally:
            timer.cancel()

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
        """Finish an authorised record; False when nobody owes it (reported, closed, unknown).

        Raises ``AuditError`` when the outcome could not be written: the record is still owed,
        so the caller may report it again (or the reaper closes it when it is overdue)."""
        try:
            await self.store.finish(audit_id, result, side_write=self.outcomes.settle(audit_id))
        except NotOwed:
            return False
        except AuditError as exc:
            # Another replica may have closed it a moment ago (its outcome came first).
            if await asyncio.to_thread(self.outcomes.owner, audit_id) is None:
                return False
            log.warning("the outcome of record %s could not be recorded now: %s", audit_id, exc)
            raise
        return True

    async def reap_once(self, now: float | None = None) -> int:
        at = time.time() if now is None else now
        closed = 0
        for audit_id in await asyncio.to_thread(self.outcomes.overdue, at):
            record = await asyncio.to_thread(self.store.get, audit_id)
            if record is None or record.result != "pending":  # closed some other way
                await asyncio.to_thread(self.outcomes.drop, audit_id)
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
            settle = self.outcomes.settle(audit_id, overdue_at=at)
            try:
                await self.store.finish(audit_id, unreported, side_write=settle)
                closed += 1
            except NotOwed:
                continue  # reported, or another replica closed it, a moment ago
            except AuditError as exc:  # still owed: the next sweep tries again
                log.warning("could not close unreported record %s now: %s", audit_id, exc)
        self.forget_old_jobs(at)
        await self.beat(at)
        await self.adopt_orphans()
        if at >= self._purge_at:
            self._purge_at = at + 60.0
            await asyncio.to_thread(self.executions.purge, at - self.job_ttl)
        return closed

    async def _reap_forever(self, every: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.reap_once()
            except Exception:
                log.exception("outcome reaper failed; retrying")
