"""The wait for one request: notify its channels, then poll until it settles or expires.

The wait is the runtime's own (a plain future and a poll, never a channel's coroutine), so a
channel or handler that ignores cancellation cannot hold the action past its window, and a
request ends in exactly one final state: settled by an answer, ``expired``, or ``cancelled``
when no channel can answer any more (or the waiting task was cancelled).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.runtime.approval import store as book_mod
from aegis.runtime.approval.channels import ApprovalChannel, HandlerChannel, Responder
from aegis.runtime.approval.wakers import WAKERS

if TYPE_CHECKING:
    from aegis.runtime.approval.store import ApprovalBook, ApprovalRequest

log = logging.getLogger("aegis.approvals")

#: How often a waiter looks at the database for answers given by other processes.
POLL_EVERY = 0.2

#: The message of a cancellation that hands the action over to another process (a server
#: replica stopping, or one that finds another has adopted its wait): the request stays as it
#: is for the adopter, and nothing is recorded here, because the adopter records the action.
HANDOVER = "aegis: handed over to another process"


#: Told, in the waiting task, of each request it is about to wait on and the channels that
#: may answer it, before any channel hears of it. A server sets it for the jobs it starts so
#: that a wait on *any* channel is a row another replica can adopt (``HANDOVER``). A failing
#: observer is logged and the wait goes on (as it would without one).
Observer = Callable[["ApprovalRequest", Sequence[ApprovalChannel]], Awaitable[None]]
ON_WAIT: contextvars.ContextVar[Observer | None] = contextvars.ContextVar(
    "aegis_on_wait", default=None
)


def handed_over(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``HANDOVER`` cancellation (see above)."""
    return isinstance(exc, asyncio.CancelledError) and exc.args[:1] == (HANDOVER,)


async def wait(
    book: ApprovalBook,
    request: ApprovalRequest,
    window: float,
    channels: Sequence[ApprovalChannel],
    action: Action,
    decision: PolicyDecision,
) -> ApprovalRequest:
    """Notify every channel and wait until the request settles or the window closes."""
    rid = request.id
    observer = ON_WAIT.get()
    if observer is not None:
        try:
            await observer(request, channels)
        except asyncio.CancelledError as exc:
            if not handed_over(exc):
                _settle_now(book, rid, "cancelled: the waiting task was cancelled")
            raise
        except Exception:
            log.exception("the wait observer failed for request %s; waiting anyway", rid)
    WAKERS.arm(rid)
    responders = {
        id(c): Responder(book, label(c), WAKERS.wake, tokens_only=c.answers_with_tokens)
        for c in channels
    }
    tasks: list[asyncio.Task[Any]] = []
    for channel in channels:
        responder = responders[id(channel)]
        if isinstance(channel, HandlerChannel):
            coro = channel.run(request, responder, action, decision)
        else:
            coro = channel.notify(request, responder)
        tasks.append(asyncio.ensure_future(coro))
    live = any(c.answers_later for c in channels)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    escalate_at = None
    if request.requirements.escalate_after is not None:
        escalate_at = loop.time() + request.requirements.escalate_after
    beat_at = loop.time() + book_mod.HEARTBEAT_EVERY
    final: ApprovalRequest | None = None
    try:
        while True:
            woken = WAKERS.arm(rid)
            pause = min(POLL_EVERY, max(0.0, deadline - loop.time()))
            pending = [t for t in tasks if not t.done()]
            if pause > 0 and not woken.done():  # in-process channels answer first: wait for
                await asyncio.wait(  # them before polling
                    [woken, *pending], timeout=pause, return_when=asyncio.FIRST_COMPLETED
                )
            known = WAKERS.latest.get(rid)
            if known is not None and known.state != book_mod.PENDING:
                final = known
                break
            state = await book.run(book.state, rid)
            if state != book_mod.PENDING:
                break
            now = loop.time()
            if now >= deadline:
                outcome = f"expired: no answer within {window:g} s"
                if await book.run(book.settle, rid, book_mod.EXPIRED, outcome):
                    break
                continue  # answered at the last moment: read what it became
            if not live and all(t.done() for t in tasks):
                why = await book.run(_why, book, rid)
                outcome = f"cancelled: no channel can answer any more ({why})"
                if await book.run(book.settle, rid, book_mod.CANCELLED, outcome):
                    break
                continue
            if escalate_at is not None and now >= escalate_at:
                escalate_at = None
                if await book.run(book.escalate, rid):
                    fresh = await book.run(book.get, rid)
                    for channel in channels:
                        if not isinstance(channel, HandlerChannel):
                            tasks.append(
                                asyncio.ensure_future(
                                    channel.escalated(fresh, responders[id(channel)])
                                )
                            )
            if now >= beat_at:
                beat_at = now + book_mod.HEARTBEAT_EVERY
                await book.run(book.heartbeat, [rid])
    except asyncio.CancelledError as exc:
        if not handed_over(exc):
            _settle_now(book, rid, "cancelled: the waiting task was cancelled")
        raise
    finally:
        WAKERS.drop(rid)
        _abandon_tasks(tasks)
    if final is None:
        final = await book.run(book.get, rid)
    for channel in channels:
        if not isinstance(channel, HandlerChannel):
            _background(channel.settled(final))
    return final


def _why(book: ApprovalBook, rid: str) -> str:
    try:
        answers = book.get(rid).answers
    except Exception:
        return "unknown"
    return "; ".join(a.note or "" for a in answers if not a.accepted) or "no answer was given"


def label(channel: ApprovalChannel) -> str:
    return channel.label if isinstance(channel, HandlerChannel) else channel.name


def _abandon_tasks(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel channel tasks without waiting: one that ignores cancellation cannot hold us."""
    for task in tasks:
        if task.done():
            _swallow(task)  # a callback would keep the finished task alive another iteration
        else:
            task.cancel()
            task.add_done_callback(_swallow)


def _swallow(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("approval channel task failed: %r", task.exception())


_BACKGROUND: set[asyncio.Task[Any]] = set()


def _background(coro: Any) -> None:
    task = asyncio.ensure_future(asyncio.wait_for(coro, 5.0))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    task.add_done_callback(_swallow)


def _settle_now(book: ApprovalBook, rid: str, outcome: str) -> None:
    """Mark the request cancelled, synchronously: a cancel scope that keeps cancelling (anyio's,
    inside the MCP SDK) would interrupt any await here and leave the request pending."""
    try:
        book.settle(rid, book_mod.CANCELLED, outcome)
    except Exception:
        log.exception("could not mark approval request %s cancelled", rid)
