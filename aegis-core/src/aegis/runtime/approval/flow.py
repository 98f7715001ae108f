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

The wait itself is ``approval.wait`` (in-process answers wake it through ``approval.wakers``);
what the step returns, and the approver and reason that reach the audit, ``approval.sought``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from aegis.core.action import Action, with_identity
from aegis.core.approval import ApprovalDecision
from aegis.core.approvers import DEFAULT_REQUIREMENTS, MAX_WINDOW
from aegis.core.decision import PolicyDecision
from aegis.core.policy import Policy
from aegis.core.result import ResultStatus
from aegis.core.risk import Approval
from aegis.errors import ActionError
from aegis.runtime import limit_state
from aegis.runtime.approval import seal as approval_seal
from aegis.runtime.approval import store as book_mod
from aegis.runtime.approval.alongside import (
    AlongsideRows,
    earlier_answers,
)
from aegis.runtime.approval.channels import ApprovalChannel, HandlerChannel
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.approval.rules import apply_edits
from aegis.runtime.approval.sought import (
    Sought,
    approved_ahead,
    approved_by,
    covers,
    describe_terms,
    refusal,
    stop,
)
from aegis.runtime.approval.wait import HANDOVER, POLL_EVERY, handed_over, label, wait
from aegis.runtime.approval.wakers import WAKERS

if TYPE_CHECKING:
    from aegis.runtime.approval.record import Settled
    from aegis.runtime.approval.store import ApprovalBook, ApprovalRequest
    from aegis.runtime.engine import Runtime

__all__ = [
    "HANDOVER",
    "MAX_ROUNDS",
    "POLL_EVERY",
    "WAKERS",
    "Sought",
    "handed_over",
    "resuming",
    "seek_approval",
]

log = logging.getLogger("aegis.approvals")

MAX_ROUNDS = 3

_RESUME: contextvars.ContextVar[tuple[str, Action | None] | None] = contextvars.ContextVar(
    "aegis_resume_request", default=None
)


@contextlib.contextmanager
def resuming(request_id: str, original: Action | None = None) -> Iterator[None]:
    """Inside this block (and tasks started in it), the next approval sought continues the
    stored request ``request_id`` instead of creating one (see the module docstring).

    ``original``: the action as first submitted, when the request is for an approver's edit of
    it (a reopened request): the approval then closes that original as edited, as it does when
    one process sees the whole exchange."""
    token = _RESUME.set((request_id, original))
    try:
        yield
    finally:
        _RESUME.reset(token)


def window_for(
    cap: float | None, decision: PolicyDecision, channels: Sequence[ApprovalChannel]
) -> float:
    """The shortest of the runtime cap, the rule's timeout and the channels' own limits."""
    best = cap
    rule = (decision.requirements or DEFAULT_REQUIREMENTS).timeout
    if rule is not None and (best is None or rule < best):
        best = rule
    for channel in channels:
        limit = channel.timeout
        if limit is not None and (best is None or limit < best):
            best = limit
    return MAX_WINDOW if best is None else float(best)


async def seek_approval(
    runtime: Runtime,
    action: Action,
    decision: PolicyDecision,
    channels: Sequence[ApprovalChannel],
    *,
    remap_edit: Callable[[Action], Action] | None = None,
) -> Sought:
    """Ask, wait, re-check. The approval returned carries the seal of every answer it was made
    on (its request's, and those of any request it reopened) for the action's audit record.

    ``remap_edit``: turns the action with an approver's edited params into the action those
    params amount to, before it is decided again and recorded (a coding-agent hook derives
    its target from the tool input: an edited Bash command is a new target). An error from it,
    or anything but an Action, denies the action: an edit that cannot become the action that
    runs never runs as something else."""
    book = runtime.audit.approvals
    seen: dict[str, Settled] = {}  # every request of this action, as last read

    def sealed() -> str | None:
        return approval_seal.seal([a for r in seen.values() for a in r.answers])

    current_action, current, replaces = action, decision, None
    submitted = action  # what an approved edit closes (see ``resuming``)
    resume: str | None = None
    resumed = _RESUME.get()
    if resumed is not None:
        _RESUME.set(None)  # one request is resumed; later rounds and actions ask anew
        resume, first = resumed
        submitted = first if first is not None else action
    for _round in range(MAX_ROUNDS):
        window = window_for(runtime.approval_timeout, current, channels)
        planned: AlongsideRows | None = None  # an auto answer, judged before it is stored
        rows: AlongsideRows | None = None
        final: Settled  # as read or written, or answered before it was stored (auto)
        if resume is not None:
            request = await book.run(book.get, resume)
            seen[request.id] = request
            resume = None
            if request.digest != current_action.digest:
                return stop(
                    request,
                    current_action,
                    current,
                    ResultStatus.DENIED,
                    f"request {request.id} was made for another action; nothing resumed",
                    seal=sealed(),
                )
            window = max(0.0, min(window, request.expires_at - time.time()))
            final = await wait(book, request, window, channels, current_action, current)
        else:
            view = runtime.audit.redactor.redact(current_action.params)
            auto = _auto_only(channels)
            if auto is not None:
                planned = await _auto(book, auto, current_action, current, window, view, replaces)
                if planned.approves:
                    final = rows = planned  # written with the action's record
                    rows.share(current_action.params, runtime.audit.redactor, view)
                else:
                    final = await _auto_stored(book, planned, window, current_action, current)
            else:
                request = await book.run(
                    book.create,
                    current_action,
                    current,
                    window=window,
                    channels=[label(c) for c in channels],
                    params_view=view,
                    replaces=replaces,
                )
                final = await wait(book, request, window, channels, current_action, current)
        seen[final.id] = final
        if final.state != book_mod.APPROVED:
            return refusal(final, current_action, current, window, channels, seal=sealed())
        candidate = current_action
        if final.edits:
            try:
                candidate = current_action.with_params(
                    apply_edits(current_action.params, final.edits)
                )
                if remap_edit is not None:
                    candidate = _remapped(remap_edit, candidate)
            except (ActionError, ValueError) as exc:
                return stop(
                    final,
                    current_action,
                    current,
                    ResultStatus.DENIED,
                    f"the approver's edits could not be applied: {exc}",
                    seal=sealed(),
                )
        fresh = still_decided(runtime, current, candidate) or await limit_state.decide(
            runtime, candidate
        )
        if rows is None:
            approval = approved_by(final, channels, seal=sealed())
        else:  # the record seals these answers once it has written them (approval.alongside)
            if len(seen) > 1:  # a reopened request: the answers before it are sealed too
                rows.earlier = earlier_answers(list(seen.values()), final.id)
            approval = approved_ahead(rows)
        original = submitted if candidate is not submitted else None
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
        if fresh.approval is Approval.AUTO or covers(final, current, fresh):
            # A request written with the record is linked to it already: nothing to link later.
            linked_later = final.id if rows is None else None
            return Sought(approval, candidate, fresh, None, None, original, linked_later)
        if planned is not None and rows is not None:  # to be superseded, it must be stored
            _request, stored = await book.run(book.write_answered, planned)
            if stored.request is not None:
                seen[final.id] = stored.request
        await book.run(
            book.settle,
            final.id,
            book_mod.SUPERSEDED,
            f"the policy now asks for more ({describe_terms(fresh)}): reopened",
            only_from=book_mod.APPROVED,
        )
        current_action, current, replaces = candidate, fresh, final.id
    return Sought(
        ApprovalDecision(
            False,
            reason="the policy kept changing",
            request_id=replaces,
            answers_seal=sealed(),
        ),
        current_action,
        current,
        ResultStatus.DENIED,
        f"denied: the policy asked for more after each of {MAX_ROUNDS} approvals",
        None,
        replaces,
    )


def still_decided(
    runtime: Runtime, decision: PolicyDecision, action: Action
) -> PolicyDecision | None:
    """``decision`` itself when evaluating ``action`` now could not answer otherwise, else
    None (evaluate it). So it is only when ``decision`` is about this very action and the
    policy in force is a ``Policy`` with the fingerprint that made it, whose decisions depend
    on the action alone (``Policy.repeatable``: no limits, no clock, no plugin conditions),
    and no gate (``Runtime.add_gate``) may have changed its mind. A policy reloaded meanwhile
    has another fingerprint unless its content is the same."""
    policy = runtime.policy
    if (
        decision.action is action
        and not runtime._gates
        and type(policy) is Policy
        and policy.repeatable
        and policy.fingerprint == decision.policy_fingerprint
    ):
        return decision
    return None


def _remapped(remap: Callable[[Action], Action], edited: Action) -> Action:
    """The caller's action for ``edited``, under ``edited``'s identity (a remap cannot move an
    action to another agent's or session's limits); any failure is a ``ValueError``."""
    try:
        found = remap(edited)
    except Exception as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc
    if not isinstance(found, Action):
        raise ValueError(f"remap_edit returned {type(found).__name__}, not an Action")
    return with_identity(found, edited.agent_id, edited.session_id)


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
) -> AlongsideRows:
    """The ``auto`` handler's round: its answer judged like any other (an allow list that does
    not name ``auto:...`` still refuses it) on the request it answers, nothing written yet.

    An answer that approves is written with the action's record, in its transaction
    (``approval.alongside``); any other is stored now, with its request (``_auto_stored``).
    """
    answer = await channel.ask(action, decision)
    channel.last_answer = answer
    return book.plan_answered(
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


async def _auto_stored(
    book: ApprovalBook,
    planned: AlongsideRows,
    window: float,
    action: Action,
    decision: PolicyDecision,
) -> ApprovalRequest:
    """An auto answer that does not approve: its request and answer stored in one transaction
    of their own, the request settled by it or closed by the usual wait."""
    request, outcome = await book.run(book.write_answered, planned)
    if outcome.request is not None and outcome.request.settled:
        return outcome.request
    if not outcome.accepted:
        who = planned.attempt.channel
        log.warning("answer from %s handler not accepted: %s", who, outcome.message)
    # Not settled (refused, or one approval of a quorum of two): no channel is left to answer,
    # so the usual wait closes it as cancelled and says why, as it does for any handler.
    return await wait(book, request, window, [], action, decision)
