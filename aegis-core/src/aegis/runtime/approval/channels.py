"""The channel side of approvals: how a request reaches people and how their answers come back.

A channel *notifies* (posts the request somewhere: a Slack message, an e-mail, a row on a
dashboard) and *reports* answers through the ``Responder`` it was handed. It never decides:
binding to the action's digest, single use, the approver allow list, quorum and expiry are
checked once, in core (``aegis.runtime.approval.rules``), for every channel alike.

Older, one-shot handlers (``ApprovalHandler.request_approval`` returning ``True`` or an
``ApprovalDecision``) are channels too: the runtime wraps them in ``HandlerChannel``, whose
answer goes through the same checks as any other.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from aegis.core.approval import ApprovalDecision

if TYPE_CHECKING:
    from aegis.core.action import Action
    from aegis.core.decision import PolicyDecision
    from aegis.runtime.approval.handlers import ApprovalHandler
    from aegis.runtime.approval.store import AnswerOutcome, ApprovalBook, ApprovalRequest

log = logging.getLogger("aegis.approvals")


class ApprovalChannel:
    """Base class for approval channels (Slack, e-mail, the queue, a dashboard ...).

    Subclasses implement ``notify``; answers may arrive at any time after it returns, from any
    task, thread or process, through ``responder.respond(...)`` (or, from another process,
    ``AuditStore.approvals.respond``). ``answers_later`` says whether answers can still come
    once ``notify`` has returned (False only for one-shot handlers).
    """

    name: ClassVar[str] = "channel"
    answers_later: ClassVar[bool] = True
    #: Its answers name their request by what a person outside sent (a button's data, a
    #: link): only the callback token counts then, a bare request id is refused. Set it in
    #: every channel whose request reference comes from the platform, not from this process.
    answers_with_tokens: ClassVar[bool] = False
    #: Seconds this channel can wait at most; it can shorten the runtime's window, never extend.
    timeout: float | None = None

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement notify()")

    async def settled(self, request: ApprovalRequest) -> None:
        """The request was settled (by this channel or another): update what people see."""

    async def escalated(self, request: ApprovalRequest, responder: Responder) -> None:
        """``escalate_after`` passed unanswered: by default, notify again."""
        await self.notify(request, responder)

    async def aclose(self) -> None:
        """Release connections (a Socket Mode link, a gateway, a poller). A Runtime calls it on
        ``close()`` for channels it built from a registered name."""


class QueueChannel(ApprovalChannel):
    """Posts nowhere: the request waits in the audit database until someone answers it with
    ``aegis approvals approve|deny`` (or the server's approvals API / dashboard)."""

    name: ClassVar[str] = "queue"

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        log.info(
            "approval request %s waiting: %s -> %s (aegis approvals show %s)",
            request.id,
            request.action_type,
            request.target,
            request.id[:8],
        )


Waker = Callable[["AnswerOutcome"], None]


class Responder:
    """How a channel reports an answer. Bound to one channel name; the identity checked
    against a rule's allow list is ``<channel>:<responder>``.

    ``tokens_only``: the reference comes from outside (a callback, a button's data), so
    only a callback token names a request; a bare id is recorded as a refused attempt. A
    client can send any data for a button it was shown, and an id is no secret (logs, the
    dashboard, ``aegis approvals``): only the token proves the sender was shown this request.
    """

    def __init__(
        self,
        book: ApprovalBook,
        channel: str,
        wake: Waker | None = None,
        *,
        tokens_only: bool = False,
    ) -> None:
        self._book = book
        self.channel = channel
        self._wake = wake
        self.tokens_only = tokens_only

    def token(self, request: ApprovalRequest) -> str:
        """The request's opaque callback token, for buttons and links (bound to its digest)."""
        return self._book.token(request)

    async def respond(
        self,
        request: str,
        responder: str,
        verdict: str,
        reason: str | None = None,
        edits: Mapping[str, Any] | None = None,
        proof: str | None = None,
        *,
        digest: str | None = None,
        refused: str | None = None,
    ) -> AnswerOutcome:
        """Report one answer: ``request`` is the request id or its callback token.

        ``verdict`` is ``"approve"`` or ``"deny"``; ``edits`` (approve only) sets params;
        ``proof`` is whatever the channel verified (a signed payload, a message id) and is
        stored with the answer. The outcome says whether it counted and why not. ``refused``
        (why) records an attempt the channel could not verify, so it is audited but never counts.
        """
        if self.tokens_only and refused is None and "." not in str(request):
            refused = (
                f"{self.channel} answers must carry the request's token, not its bare id "
                "(the token proves which request and action the sender was shown)"
            )
        outcome = await self._book.run(
            self._book.respond,
            request,
            channel=self.channel,
            responder=responder,
            verdict=verdict,
            reason=reason,
            edits=edits,
            proof=proof,
            digest=digest,
            refused=refused,
        )
        if self._wake is not None and outcome.request_id:
            self._wake(outcome)
        return outcome


class HandlerChannel(ApprovalChannel):
    """A one-shot ``ApprovalHandler`` used as a channel: its answer is reported like any other.

    Handlers written for the original API as ``request_approval(self, decision)`` (one
    argument) are called that way. Every answer other than ``True`` or an approving
    ``ApprovalDecision`` — ``False``, ``None``, ``"yes"``, an exception — is reported as a
    denial that says why.
    """

    answers_later: ClassVar[bool] = False

    def __init__(self, handler: ApprovalHandler) -> None:
        self.handler = handler
        self.label = getattr(handler, "name", None) or type(handler).__name__
        self.timeout = getattr(handler, "timeout", None)
        self.one_argument = _takes_one_argument(handler.request_approval)
        self.last_answer: ApprovalDecision | None = None

    async def ask(self, action: Action, decision: PolicyDecision) -> ApprovalDecision:
        try:
            if self.one_argument:
                legacy: Any = self.handler.request_approval
                answer = await legacy(decision)
            else:
                answer = await self.handler.request_approval(action, decision)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return ApprovalDecision(
                False, reason=f"approval handler raised {type(exc).__name__}: {exc}"
            )
        if answer is True:
            return ApprovalDecision(True)
        if isinstance(answer, ApprovalDecision):
            if answer.approved is True:
                return answer
            return ApprovalDecision(
                False, approver=answer.approver, reason=answer.reason or "denied"
            )
        if answer is False:
            return ApprovalDecision(False, reason="denied")
        return ApprovalDecision(
            False,
            reason=f"handler returned {type(answer).__name__} {answer!r}, which is not an approval",
        )

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        raise NotImplementedError("the runtime calls HandlerChannel.run, with the action")

    async def run(
        self,
        request: ApprovalRequest,
        responder: Responder,
        action: Action,
        decision: PolicyDecision,
    ) -> None:
        answer = await self.ask(action, decision)
        self.last_answer = answer
        who = answer.approver or self.label
        outcome = await responder.respond(
            request.id,
            who,
            "approve" if answer.approved else "deny",
            answer.reason,
            digest=request.digest,
        )
        if not outcome.accepted:
            log.warning("answer from %s handler not accepted: %s", self.label, outcome.message)


def _takes_one_argument(method: Callable[..., Any]) -> bool:
    try:
        params = [
            p
            for p in inspect.signature(method).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(params) == 1


def describe(request: ApprovalRequest) -> dict[str, Any]:
    """What every channel shows people about a request, as plain JSON-ready data.

    Params are the stored (redacted) ones: a channel never sees a secret it does not need.
    """
    return {
        "id": request.id,
        "state": request.state,
        "action_type": request.action_type,
        "target": request.target,
        "params": request.params,
        "description": request.description,
        "risk_level": request.risk_level,
        "matched_rule": request.matched_rule,
        "agent_id": request.agent_id,
        "session_id": request.session_id,
        "who_may_answer": request.requirements.describe(),
        "quorum": request.requirements.quorum,
        "expires_at": _iso(request.expires_at),
        "digest": request.digest,
        "outcome": request.outcome,
        "approvers": list(request.approvers),
    }


def summary_text(request: ApprovalRequest) -> str:
    """A few lines for a chat message or an e-mail body."""
    import json

    params = json.dumps(request.params, ensure_ascii=False, default=str)
    if len(params) > 1500:
        params = params[:1500] + " …"
    lines = [
        f"Approval needed: {request.action_type} -> {request.target}",
        f"risk {request.risk_level}, rule {request.matched_rule or '(defaults)'}",
        f"agent {request.agent_id or '-'}, session {request.session_id or '-'}",
        f"params {params}",
        f"may answer: {request.requirements.describe()}",
        f"expires {_iso(request.expires_at)} (request {request.id[:8]})",
    ]
    if request.description:
        lines.insert(1, request.description)
    if request.state != "pending":
        lines.append(f"{request.state}: {request.outcome or ''}".rstrip(": "))
    return "\n".join(lines)


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
