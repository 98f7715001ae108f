"""What a verified Slack interaction becomes (``Answers``), and the Web API calls that
answer back.

Apart from ``slack`` because both ways an interaction arrives feed it: Socket Mode in the
channel (``slack.SlackChannel``) and the signed HTTP callbacks on ``aegis serve``
(``slack.Interactivity``), which has no channel. Each answer is reported to the core
(``responder.respond``), which decides whether it counts; the person who answered is told,
privately, what became of it. Web API calls retry on their own terms, up to the request's
deadline (``call``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from aegis.approvals import slack_blocks as ui
from aegis.runtime.approval.channels import Responder
from aegis.runtime.approval.retry import TryAgain, until
from aegis.runtime.approval.store import ApprovalRequest

log = logging.getLogger("aegis.approvals.slack")

_TRANSIENT = {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}

Lookup = Callable[[str], Awaitable[ApprovalRequest | None]]


def web_client(token: str | None, base_url: str | None = None) -> AsyncWebClient:
    """An ``AsyncWebClient`` without the SDK's own retries: ours know the request's deadline.
    ``$AEGIS_SLACK_API_URL`` points it elsewhere (a proxy, a test stand-in)."""
    url = base_url or os.environ.get("AEGIS_SLACK_API_URL") or AsyncWebClient.BASE_URL
    return AsyncWebClient(
        token=token, base_url=url.rstrip("/") + "/", timeout=10, retry_handlers=[]
    )


async def call(
    method: Callable[..., Awaitable[AsyncSlackResponse]], deadline: float, **kwargs: Any
) -> AsyncSlackResponse | None:
    """Call a Web API method until it answers, retrying 429 (after its Retry-After), 5xx and
    network errors with backoff until ``deadline``; None if it never did or refused for good."""
    what = f"slack {getattr(method, '__name__', 'call')}"

    async def attempt() -> AsyncSlackResponse | None:
        try:
            return await asyncio.wait_for(method(**kwargs), max(deadline - time.time(), 0.1))
        except SlackApiError as exc:
            status, data = exc.response.status_code, exc.response.data
            error = str(data.get("error", "")) if isinstance(data, dict) else ""
            if status != 429 and status < 500 and error not in _TRANSIENT:
                log.error("%s refused: %s (HTTP %s)", what, error, status)
                return None
            raise TryAgain(f"HTTP {status} {error}", _retry_after(exc.response.headers)) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TryAgain(f"{type(exc).__name__}: {exc}") from exc

    return await until(attempt, deadline, what, log)


def _retry_after(headers: Mapping[str, Any]) -> float:
    found = {str(k).lower(): v for k, v in (headers or {}).items()}.get("retry-after", "0")
    try:
        return min(float(found), 60.0)
    except ValueError:
        return 0.0


class Answers:
    """Verified interaction payloads -> reports (Socket Mode and the HTTP route alike); each
    person who answered is told, privately, what became of their answer."""

    def __init__(
        self, client: AsyncWebClient, lookup: Lookup, responder: Callable[[str], Responder | None]
    ) -> None:
        self.client, self.lookup, self.responder = client, lookup, responder

    async def interaction(self, payload: Mapping[str, Any], proof: str) -> dict[str, Any] | None:
        """Handle one payload; what it returns (a modal's errors) goes back in the ack."""
        user = str((payload.get("user") or {}).get("id") or "")
        if user and payload.get("type") == "block_actions":
            channel = (payload.get("channel") or {}).get("id")
            for action in payload.get("actions") or []:
                await self._clicked(action, user, channel, payload.get("trigger_id"), proof)
        elif user and payload.get("type") == "view_submission":
            return await self._submitted(payload.get("view") or {}, user, proof)
        return None

    async def _clicked(
        self, action: Mapping[str, Any], user: str, channel: str | None, trigger: Any, proof: str
    ) -> None:
        token, kind = str(action.get("value") or ""), action.get("action_id")
        if kind == ui.APPROVE:
            await self.report(token, user, "approve", proof, channel)
        elif kind in (ui.DENY, ui.EDIT) and isinstance(trigger, str):
            request = await self.lookup(token)
            if request is None:
                await self.tell(channel, user, "This request is no longer open.")
                return
            view = (
                ui.edit_view(request, token, channel)
                if kind == ui.EDIT
                else ui.deny_view(token, channel)
            )
            # A trigger id is good for three seconds: no long retries.
            await call(self.client.views_open, time.time() + 2.5, trigger_id=trigger, view=view)

    async def _submitted(
        self, view: Mapping[str, Any], user: str, proof: str
    ) -> dict[str, Any] | None:
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            token, channel = str(meta["token"]), meta.get("channel")
        except (ValueError, KeyError, TypeError):
            return None
        values = (view.get("state") or {}).get("values") or {}
        reason = ui.read_reason(values)
        if view.get("callback_id") == ui.DENY:
            await self.report(token, user, "deny", proof, channel, reason=reason)
        elif view.get("callback_id") == ui.EDIT:
            request = await self.lookup(token)
            if request is None:
                return {"response_action": "errors", "errors": {"reason": "no longer open"}}
            edits, errors = ui.read_edits(request, values)
            if errors:
                return {"response_action": "errors", "errors": errors}
            await self.report(token, user, "approve", proof, channel, reason=reason, edits=edits)
        return None

    async def report(
        self,
        token: str,
        user: str,
        verdict: str,
        proof: str,
        channel: str | None,
        *,
        reason: str | None = None,
        edits: dict[str, Any] | None = None,
        thread: str | None = None,
    ) -> None:
        responder = self.responder(token)
        if responder is None or "." not in token:  # only a token binds the answer to the action
            log.warning("slack answer from %s without a request token: ignored", user)
            return
        outcome = await responder.respond(token, user, verdict, reason, edits, proof)
        if not outcome.accepted:
            log.warning("slack answer from %s refused: %s", user, outcome.message)
        await self.tell(channel, user, outcome.message, thread)

    async def tell(self, channel: Any, user: str, text: str, thread: str | None = None) -> None:
        if isinstance(channel, str) and channel:
            extra = {"thread_ts": thread} if thread else {}
            post = self.client.chat_postEphemeral
            await call(post, time.time() + 2.0, channel=channel, user=user, text=text, **extra)
