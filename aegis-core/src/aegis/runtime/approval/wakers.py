"""How an answer given in this process wakes the runtime waiting for it, at once.

Answers from another process are found by the waiter's poll (``approval.wait.POLL_EVERY``) or,
where the database can say so (PostgreSQL NOTIFY, the server), by ``WAKERS.poke``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis.runtime.approval.store import AnswerOutcome, ApprovalRequest


class _Wakers:
    """In-process answers wake their waiter at once (with the request as the answer left it)
    instead of at the next poll.

    A waiter waits on a plain future, not an ``Event.wait()`` task: a task outlives the wait by
    a loop iteration, and the audit writer takes any other live task as a reason to queue the
    action's record for its thread instead of writing it inline.
    """

    def __init__(self) -> None:
        self._futures: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        self.latest: dict[str, ApprovalRequest] = {}

    def arm(self, rid: str) -> asyncio.Future[None]:
        """The future the next answer to ``rid`` resolves (a fresh one once it has fired)."""
        found = self._futures.get(rid)
        if found is not None and not found[1].done():
            return found[1]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._futures[rid] = (loop, future)
        return future

    def drop(self, rid: str) -> None:
        found = self._futures.pop(rid, None)
        if found is not None and not found[1].done():
            found[1].cancel()
        self.latest.pop(rid, None)

    def poke(self, rid: str) -> None:
        """Make this process's waiter of ``rid`` re-read the database now: another process
        answered it and said so (PostgreSQL NOTIFY, say), so it need not wait for its poll."""
        found = self._futures.get(rid)
        if found is None:
            return
        loop, future = found
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(_fire, future)

    def wake(self, outcome: AnswerOutcome) -> None:
        rid = outcome.request_id
        found = self._futures.get(rid) if rid else None
        if found is None or rid is None:
            return
        if outcome.request is not None:
            self.latest[rid] = outcome.request
        loop, future = found
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:
            _fire(future)
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(_fire, future)


def _fire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


WAKERS = _Wakers()
