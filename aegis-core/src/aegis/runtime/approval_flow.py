"""The APPROVE step: store a request, notify channels, wait for it to settle, re-check.

Invariants kept here:

* The request row exists before any channel hears of it; it ends in exactly one final state.
* The wait is the runtime's own: a channel or handler that ignores cancellation cannot hold
  the action past the window (the window is the smallest of the runtime's cap, the rule's
  ``timeout`` and any channel's ``timeout``).
* An approval covers the exact action it was given for (``Action.digest``), or the edited
  action its approver made. After the answer the action is evaluated against the policy in
  force *now*: a block wins; an ``auto`` decision runs; a decision that asks for more than the
  approval gave (higher risk, another quorum or allow list the approvers do not meet) reopens
  the request — a new request under the new terms, the old one ``superseded`` — at most
  ``MAX_ROUNDS`` times, then the action is denied.

``resuming(request_id)`` lets a process continue a wait another one began (a server replica
picking up, after a restart, a request whose waiter died; see ``ApprovalBook.adopt``): the
first approval sought inside it continues that request, under its own expiry, instead of
storing a new one, and only for the very action it was made for (same ``Action.digest``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from aegis.core.action import Action
from aegis.core.approval import ApprovalDecision
from aegis.core.approvers import DEFAULT_REQUIREMENTS, MAX_WINDOW
from aegis.core.decision import PolicyDecision
from aegis.core.result import ResultStatus
from aegis.core.risk import Approval
from aegis.errors import ActionError
from aegis.runtime import approval_store as book_mod
from aegis.runtime import limit_state
from aegis.runtime.approval import AutoApprovalHandler
from aegis.runtime.approval_channels import ApprovalChannel, HandlerChannel, Responder
from aegis.runtime.approval_rules import apply_edits

if TYPE_CHECKING:
    from aegis.runtime.approval_store import AnswerOutcome, ApprovalBook, ApprovalRequest
    from aegis.runtime.engine import Runtime

log = logging.getLogger("aegis.approvals")

MAX_ROUNDS = 3
#: How often a waiter looks at the database for answers given by other processes.
POLL_EVERY = 0.2

#: The message of a cancellation that hands the action over to another process (a server
#: replica stopping, or one that finds another has adopted its wait): the request stays as it
#: is for the adopter, and nothing is recorded here, because the adopter records the action.
HANDOVER = "aegis: handed over to another process"


def handed_over(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``HANDOVER`` cancellation (see above)."""
    return isinstance(exc, asyncio.CancelledError) and exc.args[:1] == (HANDOVER,)


_RESUME: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "aegis_resume_request", default=None
)


@contextlib.contextmanager
def resuming(request_id: str) -> Iterator[None]:
    """Inside this block (and tasks started in it), the next approval sought continues the
    stored request ``request_id`` instead of creating one (see the module docstring)."""
    token = _RESUME.set(request_id)
    try:
        yield
    finally:
        _RESUME.reset(token)


@attrs.frozen
class Sought:
    """The APPROVE step's answer: run ``action`` under ``decision``, or stop with ``status``."""

    approval: ApprovalDecision
    action: Action
    decision: PolicyDecision
    status: ResultStatus | None = None  # DENIED or BLOCKED when the action must not run
    reason: str | None = None
    original: Action | None = None  # the action as submitted, when an approver edited it
    request_id: str | None = None


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


def window_for(
    cap: float | None, decision: PolicyDecision, channels: Sequence[ApprovalChannel]
) -> float:
    """The shortest of the runtime cap, the rule's timeout and the channels' own limits."""
    limits = [cap, (decision.requirements or DEFAULT_REQUIREMENTS).timeout]
    limits += [c.timeout for c in channels]
    found = [float(x) for x in limits if x is not None]
    return min(found) if found else MAX_WINDOW


async def seek_approval(
    runtime: Runtime,
    action: Action,
    decision: PolicyDecision,
    channels: Sequence[ApprovalChannel],
) -> Sought:
    book = runtime.audit.approvals
    current_action, current, replaces = action, decision, None
    resume = _RESUME.get()
    if resume is not None:
        _RESUME.set(None)  # one request is resumed; later rounds and actions ask anew
    for _round in range(MAX_ROUNDS):
        window = window_for(runtime.approval_timeout, current, channels)
        if resume is not None:
            request = await book.run(book.get, resume)
            resume = None
            if request.digest != current_action.digest:
                return _stop(
                    request,
                    current_action,
                    current,
                    ResultStatus.DENIED,
                    f"request {request.id} was made for another action; nothing resumed",
                )
            window = max(0.0, min(window, request.expires_at - time.time()))
            final = await _wait(book, request, window, channels, current_action, current)
        else:
            view = runtime.audit.redactor.redact(current_action.params)
            auto = _auto_only(channels)
            if auto is not None:
                final = await _auto(book, auto, current_action, current, window, view, replaces)
            else:
                request = await book.run(
                    book.create,
                    current_action,
                    current,
                    window=window,
                    channels=[_label(c) for c in channels],
                    params_view=view,
                    replaces=replaces,
                )
                final = await _wait(book, request, window, channels, current_action, current)
        if final.state != book_mod.APPROVED:
            return _refusal(final, current_action, current, window, channels)
        candidate = current_action
        if final.edits:
            try:
                candidate = current_action.with_params(
                    apply_edits(current_action.params, final.edits)
                )
            except (ActionError, ValueError) as exc:
                return _stop(
                    final,
                    current_action,
                    current,
                    ResultStatus.DENIED,
                    f"the approver's edits could not be applied: {exc}",
                )
        fresh = await limit_state.decide(runtime, candidate)
        approval = _approval(final, channels)
        original = action if candidate is not action else None
        if fresh.approval is Approval.BLOCK:
            reason = fresh.reason or f"blocked by rule {fresh.matched_rule or '(defaults)'}"
            return Sought(
                approval,
                candidate,
                fresh,
                ResultStatus.BLOCKED,
                f"approved, but the policy in force now blocks it: {reason}",
                original,
                final.id,
            )
        if fresh.approval is Approval.AUTO or _covers(final, current, fresh):
            return Sought(approval, candidate, fresh, None, None, original, final.id)
        await book.run(
            book.settle,
            final.id,
            book_mod.SUPERSEDED,
            f"the policy now asks for more ({_terms(fresh)}): reopened",
            only_from=book_mod.APPROVED,
        )
        current_action, current, replaces = candidate, fresh, final.id
    return Sought(
        ApprovalDecision(False, reason="the policy kept changing", request_id=replaces),
        current_action,
        current,
        ResultStatus.DENIED,
        f"denied: the policy asked for more after each of {MAX_ROUNDS} approvals",
        None,
        replaces,
    )


def _auto_only(channels: Sequence[ApprovalChannel]) -> HandlerChannel | None:
    """The one channel, when it is the built-in ``auto`` handler (not a subclass: that may ask
    someone). Its answer is fixed, so nobody is asked and no pending request need be visible."""
    if len(channels) == 1:
        channel = channels[0]
        if isinstance(channel, HandlerChannel) and type(channel.handler) is AutoApprovalHandler:
            return channel
    return None


async def _auto(
    book: ApprovalBook,
    channel: HandlerChannel,
    action: Action,
    decision: PolicyDecision,
    window: float,
    view: Any,
    replaces: str | None,
) -> ApprovalRequest:
    """The ``auto`` handler's round: request and answer stored in one transaction, the answer
    judged like any other (an allow list that does not name ``auto:...`` still refuses it)."""
    answer = await channel.ask(action, decision)
    channel.last_answer = answer
    request, outcome = await book.run(
        book.create_answered,
        action,
        decision,
        window=window,
        channel=channel.label,
        params_view=view,
        responder=answer.approver or channel.label,
        verdict="approve" if answer.approved else "deny",
        reason=answer.reason,
        replaces=replaces,
    )
    if outcome.request is not None and outcome.request.settled:
        return outcome.request
    if not outcome.accepted:
        log.warning("answer from %s handler not accepted: %s", channel.label, outcome.message)
    # Not settled (refused, or one approval of a quorum of two): no channel is left to answer,
    # so the usual wait closes it as cancelled and says why, as it does for any handler.
    return await _wait(book, request, window, [], action, decision)


async def _wait(
    book: ApprovalBook,
    request: ApprovalRequest,
    window: float,
    channels: Sequence[ApprovalChannel],
    action: Action,
    decision: PolicyDecision,
) -> ApprovalRequest:
    """Notify every channel and wait until the request settles or the window closes."""
    rid = request.id
    WAKERS.arm(rid)
    responders = {id(c): Responder(book, _label(c), WAKERS.wake) for c in channels}
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


def _covers(final: ApprovalRequest, asked: PolicyDecision, fresh: PolicyDecision) -> bool:
    """Whether the approvals given under ``asked`` also meet ``fresh``'s terms."""
    if fresh.risk_level > asked.risk_level:
        return False
    terms = fresh.requirements or DEFAULT_REQUIREMENTS
    allowed = [a for a in final.approvers if terms.allows(a, escalated=final.escalated)]
    return len(allowed) >= terms.quorum


def _terms(decision: PolicyDecision) -> str:
    terms = decision.requirements or DEFAULT_REQUIREMENTS
    return f"rule {decision.matched_rule or '(defaults)'}, risk {decision.risk_level}, " + (
        terms.describe()
    )


def _approval(final: ApprovalRequest, channels: Sequence[ApprovalChannel]) -> ApprovalDecision:
    approvers = final.approvers
    shown = [_plain(a, channels) for a in approvers]
    accepted = [a for a in final.answers if a.accepted and a.verdict == "approve"]
    reason = "; ".join(a.reason for a in accepted if a.reason) or None
    return ApprovalDecision(
        True,
        approver=", ".join(shown) or None,
        reason=reason,
        handler=",".join(final.channels) or None,
        request_id=final.id,
        approvers=approvers,
        edited=bool(final.edits),
    )


def _refusal(
    final: ApprovalRequest,
    action: Action,
    decision: PolicyDecision,
    window: float,
    channels: Sequence[ApprovalChannel],
) -> Sought:
    """Denied, expired, cancelled or abandoned: the action does not run; say why."""
    denial = next((a for a in final.answers if a.accepted and a.verdict == "deny"), None)
    if final.state == book_mod.EXPIRED:
        approval = ApprovalDecision(
            False,
            reason=f"no answer within {window:g} s",
            handler=",".join(final.channels) or None,
            timed_out=True,
            request_id=final.id,
        )
        return Sought(
            approval,
            action,
            decision,
            ResultStatus.DENIED,
            f"approval timed out: no answer within {window:g} s",
            None,
            final.id,
        )
    if denial is not None:
        who = denial.responder
        approval = ApprovalDecision(
            False,
            approver=_plain(who, channels),
            reason=denial.reason or "denied",
            handler=denial.channel,
            request_id=final.id,
        )
        because = f": {denial.reason}" if denial.reason else ""
        return Sought(
            approval, action, decision, ResultStatus.DENIED, f"denied{because}", None, final.id
        )
    return _stop(
        final, action, decision, ResultStatus.DENIED, f"denied: {final.outcome or final.state}"
    )


def _stop(
    final: ApprovalRequest,
    action: Action,
    decision: PolicyDecision,
    status: ResultStatus,
    reason: str,
) -> Sought:
    approval = ApprovalDecision(
        False, reason=reason, handler=",".join(final.channels) or None, request_id=final.id
    )
    return Sought(approval, action, decision, status, reason, None, final.id)


def _plain(identity: str, channels: Sequence[ApprovalChannel]) -> str:
    """``callback:alice`` -> ``alice`` for one-shot handlers: the audit's approver column keeps
    the name the handler gave, as it always did; channel answers keep ``channel:id``."""
    channel, _, who = identity.partition(":")
    handlers = {c.label for c in channels if isinstance(c, HandlerChannel)}
    return who if channel in handlers else identity


def _why(book: ApprovalBook, rid: str) -> str:
    try:
        answers = book.get(rid).answers
    except Exception:
        return "unknown"
    return "; ".join(a.note or "" for a in answers if not a.accepted) or "no answer was given"


def _label(channel: ApprovalChannel) -> str:
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
