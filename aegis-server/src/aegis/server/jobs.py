"""One ``/execute`` call on this replica (a job), and how it learns which approval request it
waits on, whatever the channel (the moment the service makes the wait durable)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from aegis.core.action import Action
from aegis.core.result import Result
from aegis.runtime.approval.channels import ApprovalChannel, QueueChannel
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.engine import Authorization

if TYPE_CHECKING:
    from aegis.server.service import Service


@attrs.define
class Job:
    """One ``/execute`` call in progress on this replica."""

    id: str
    key_name: str
    action: Action | None = None
    #: The action as first submitted, once an approver's edit of it is what waits (it is
    #: closed as edited when the edit is approved, on whichever replica runs it).
    original: Action | None = None
    service: Service | None = None
    task: asyncio.Task[Result | Authorization | None] | None = None
    request_ids: list[str] = attrs.field(factory=list)
    done: asyncio.Event = attrs.field(factory=asyncio.Event)
    #: It is done or waits for a human, whichever came first (``told``); ``news`` is the
    #: future ``Service.first_news`` awaits until then (a plain future and a timer: an Event
    #: and ``asyncio.timeout`` cost a tenth of an auto action's CPU in the server).
    told: bool = False
    news: asyncio.Future[None] | None = None
    outcome: Result | Authorization | None = None
    failure: str | None = None
    finished_at: float | None = None
    #: A row in ``executions`` stands for this job (written when it must be waited for).
    durable: bool = False
    closing: bool = False
    #: Claimed (``waiting -> executing``) here: it runs here, whatever happens.
    claimed: bool = False
    #: Another replica holds its row now and records its outcome.
    handed_over: bool = False
    lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    def tell(self) -> None:
        """It is done, or waits for a human: whoever waits for its first news stops waiting."""
        self.told = True
        if self.news is not None and not self.news.done():
            self.news.set_result(None)


CURRENT_JOB: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "aegis_server_job", default=None
)


async def on_wait(request: ApprovalRequest, channels: Sequence[ApprovalChannel]) -> None:
    """The job that started the action waits for ``request`` (on any channels): make the
    wait durable before anyone is told where to poll, so a stopping replica can hand it over.

    With a channel that answers later (the queue, a chat, e-mail), a human answers: the caller
    gets its 202 now. With one-shot handlers only, the call goes on waiting for their answer
    (up to ``FIRST_NEWS``), as it would for a slow executor."""
    job = CURRENT_JOB.get()
    if job is None or (job.request_ids and job.request_ids[-1] == request.id):
        return  # not a job's wait, or the very request it resumes
    if job.service is not None:
        await job.service.waiting_on(job, request)
    job.request_ids.append(request.id)
    if any(c.answers_later for c in channels):
        job.tell()


class ServerQueueChannel(QueueChannel):
    """The queue channel. Kept for code that builds a server's runtime itself: every channel
    tells the job what it waits on now (``on_wait``, through ``ON_WAIT``)."""
