"""Approval channel: a Block Kit message in Slack with Approve / Deny / Edit buttons.

Slack tells us who clicked; the core decides whether that answer counts (binding to the
request and its action digest, the allow list of ``slack:<user id>`` identities, quorum,
expiry) and stores every attempt. This module only turns *verified* Slack payloads into
``responder.respond`` calls:

* clicks and modal submissions arrive over Socket Mode (the connection is authenticated by the
  app-level token) or at ``POST /slack/interactivity`` on ``aegis serve``, where the ``v0``
  signature is checked on the raw body, within 300 s, before anything is parsed, and a replayed
  callback is refused;
* a reply in the message's thread counts only when its whole text is ``approve`` or
  ``deny <reason>``, from a user (never a bot). Replies arrive as Events API ``message`` events
  over Socket Mode; ``conversations.replies`` is not polled (it is heavily rate limited).

Buttons carry the request's callback token (id plus a MAC of id and digest), never the bare id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from aegis.approvals import slack_blocks as ui
from aegis.errors import ApprovalError
from aegis.hookspecs import Register, hookimpl
from aegis.http import HttpRequest, HttpResponse
from aegis.runtime.approval.channels import ApprovalChannel, Responder, summary_text
from aegis.runtime.approval.store import ApprovalRequest

log = logging.getLogger("aegis.approvals.slack")

INTERACTIVITY_PATH = "/slack/interactivity"
WINDOW = 300  # seconds a signed callback stays acceptable (Slack's documented five minutes)
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
    what, delay = getattr(method, "__name__", "slack call"), 0.5
    while True:
        try:
            return await asyncio.wait_for(method(**kwargs), max(deadline - time.time(), 0.1))
        except SlackApiError as exc:
            status, data = exc.response.status_code, exc.response.data
            error = str(data.get("error", "")) if isinstance(data, dict) else ""
            if status != 429 and status < 500 and error not in _TRANSIENT:
                log.error("slack %s refused: %s (HTTP %s)", what, error, status)
                return None
            why = f"HTTP {status} {error}"
            delay = max(delay, _retry_after(exc.response.headers))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        if time.time() + delay >= deadline:
            log.warning("slack %s gave up: %s", what, why)
            return None
        log.info("slack %s failed (%s); again in %.1f s", what, why, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


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


class SlackChannel(ApprovalChannel):
    """Posts requests to a Slack channel; answers come over Socket Mode or the HTTP route.

    ``channel``, ``token`` and ``app_token`` default to ``$AEGIS_SLACK_CHANNEL``,
    ``$SLACK_BOT_TOKEN`` and ``$SLACK_APP_TOKEN``. Without an app token there is no Socket
    Mode: clicks reach ``aegis serve`` at ``/slack/interactivity`` and thread replies are not
    read. The Socket Mode connection opens with the first request and stays open until
    ``aclose()`` (or the end of ``async with channel:``).
    """

    name: ClassVar[str] = "slack"

    def __init__(
        self,
        channel: str | None = None,
        *,
        token: str | None = None,
        app_token: str | None = None,
        base_url: str | None = None,
        client: AsyncWebClient | None = None,
    ) -> None:
        self.channel = channel or os.environ.get("AEGIS_SLACK_CHANNEL", "")
        token = token or os.environ.get("SLACK_BOT_TOKEN", "")
        if not self.channel or not (token or client):
            raise ValueError(
                "slack channel: give channel= and token=, or set AEGIS_SLACK_CHANNEL and "
                "SLACK_BOT_TOKEN"
            )
        self.app_token = app_token or os.environ.get("SLACK_APP_TOKEN") or None
        self.base_url = base_url
        self.client = client or web_client(token, base_url)
        self.answers = Answers(self.client, self._lookup, self._responder)
        self._open: dict[str, tuple[ApprovalRequest, Responder]] = {}  # by token
        self._threads: dict[tuple[str, str], str] = {}  # (channel, message ts) -> token
        self._last: Responder | None = None
        self._socket: SocketModeClient | None = None
        self._connecting: asyncio.Future[Any] | None = None

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        token = responder.token(request)
        self._open.setdefault(token, (request, responder))
        self._last = responder
        self.start()
        sent = await call(
            self.client.chat_postMessage,
            request.expires_at,
            channel=self.channel,
            text=ui.esc(summary_text(request))[:3000],
            blocks=ui.message_blocks(request, token),
            unfurl_links=False,
        )
        if sent is not None:
            self._threads[(str(sent["channel"]), str(sent["ts"]))] = token

    async def settled(self, request: ApprovalRequest) -> None:
        token = next((t for t, (r, _) in self._open.items() if r.id == request.id), "")
        self._open.pop(token, None)
        for channel, ts in [where for where, t in self._threads.items() if t == token]:
            del self._threads[(channel, ts)]
            text, blocks = ui.esc(summary_text(request))[:3000], ui.message_blocks(request, None)
            update = self.client.chat_update
            await call(update, time.time() + 4.5, channel=channel, ts=ts, text=text, blocks=blocks)

    def start(self) -> None:
        """Open the Socket Mode connection in the background; the SDK retries until it is up."""
        if self.app_token is None or self._socket is not None:
            return
        self._socket = SocketModeClient(
            self.app_token, web_client=web_client(None, self.base_url), logger=log
        )
        self._socket.socket_mode_request_listeners.append(self._on_envelope)  # type: ignore[arg-type]
        self._connecting = asyncio.ensure_future(self._socket.connect())  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        socket, self._socket = self._socket, None
        if self._connecting is not None:
            self._connecting.cancel()
        if socket is not None:
            await socket.close()  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> SlackChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _on_envelope(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        """Ack first (Slack wants it within 3 s), except a modal's, whose ack carries errors."""
        payload = req.payload if isinstance(req.payload, dict) else {}
        modal = req.type == "interactive" and payload.get("type") == "view_submission"
        if not modal:
            await client.send_socket_mode_response(SocketModeResponse(req.envelope_id))
        ack: dict[str, Any] | None = None
        try:
            if req.type == "interactive":
                ack = await self.answers.interaction(payload, f"slack envelope {req.envelope_id}")
            elif req.type == "events_api":
                await self._on_event(payload.get("event") or {})
        except Exception:
            log.exception("slack envelope %s could not be handled", req.envelope_id)
        if modal:
            await client.send_socket_mode_response(SocketModeResponse(req.envelope_id, ack))

    async def _on_event(self, event: Mapping[str, Any]) -> None:
        """A thread reply: only a person's exact ``approve`` / ``deny <reason>`` is an answer."""
        if event.get("type") != "message" or event.get("subtype") or event.get("bot_id"):
            return
        channel, thread, user = event.get("channel"), event.get("thread_ts"), event.get("user")
        token = self._threads.get((str(channel), str(thread)))
        command = ui.parse_command(str(event.get("text") or ""))
        if token is None or not user or event.get("ts") == thread or command is None:
            return
        proof = f"slack thread reply {channel}/{event.get('ts')}"
        verdict, reason = command
        await self.answers.report(
            token, str(user), verdict, proof, channel, reason=reason, thread=str(thread)
        )

    async def _lookup(self, token: str) -> ApprovalRequest | None:
        found = self._open.get(token)
        return found[0] if found else None

    def _responder(self, token: str) -> Responder | None:
        """A late or foreign token still goes to the core, which refuses and records it."""
        found = self._open.get(token)
        return found[1] if found else self._last


class Interactivity:
    """``POST /slack/interactivity``: Slack's signed interaction callbacks.

    The signing secret (``$SLACK_SIGNING_SECRET``) checks the raw body before it is parsed;
    the bot token (``$SLACK_BOT_TOKEN``) opens the Deny / Edit modals.
    """

    #: Signatures accepted lately, shared by every handler in the process: a replay is refused.
    seen: ClassVar[dict[str, float]] = {}

    def __init__(
        self,
        signing_secret: str | None = None,
        *,
        client: AsyncWebClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        secret = signing_secret or os.environ.get("SLACK_SIGNING_SECRET", "")
        if not secret.strip():
            raise ValueError("slack interactivity: set SLACK_SIGNING_SECRET")
        self.clock = clock or Clock()
        self.verifier = SignatureVerifier(secret, clock=self.clock)
        self.client = client or web_client(os.environ.get("SLACK_BOT_TOKEN"))

    def check(self, request: HttpRequest) -> str:
        """'' when the callback is signed by Slack, fresh, and not seen before; else why not."""
        ts = request.header("x-slack-request-timestamp") or ""
        signature = request.header("x-slack-signature") or ""
        now = self.clock.now()
        if not (ts.isascii() and ts.isdigit()) or not signature.startswith("v0="):
            return "missing or malformed signature headers"
        if abs(now - int(ts)) > WINDOW:
            return "stale timestamp"
        try:
            valid = self.verifier.is_valid(request.body, ts, signature)
        except (UnicodeDecodeError, ValueError):
            valid = False
        if not valid:
            return "bad signature"
        seen = Interactivity.seen
        for old in [s for s, at in seen.items() if at < now - 2 * WINDOW]:
            del seen[old]
        if signature in seen:
            return "replayed callback"
        seen[signature] = now
        return ""

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.context is None:
            return HttpResponse.json({"error": "not served", "detail": "no audit store"}, 503)
        problem = self.check(request)
        if problem:
            return HttpResponse.json({"error": "unauthorized", "detail": problem}, 401)
        try:
            payload = json.loads(parse_qs(request.body.decode())["payload"][0])
            if not isinstance(payload, dict):
                raise ValueError("payload is not an object")
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            return HttpResponse.json({"error": "bad request", "detail": str(exc)}, 400)
        book = request.context.store.approvals
        responder = request.context.responder("slack")

        async def lookup(token: str) -> ApprovalRequest | None:
            if "." not in token:  # only a token (which holds a MAC) opens a modal
                return None
            try:
                found = await book.run(book.get, token)
            except ApprovalError:
                return None
            return found if found.state == "pending" else None

        proof = f"slack signature {request.header('x-slack-signature')}"
        ack = await Answers(self.client, lookup, lambda _: responder).interaction(payload, proof)
        return HttpResponse.json(ack) if ack else HttpResponse(200)


async def interactivity(request: HttpRequest) -> HttpResponse:
    """The registered route, configured from the server's environment."""
    try:
        handler = Interactivity()
    except ValueError as exc:
        return HttpResponse.json({"error": "not configured", "detail": str(exc)}, 503)
    return await handler(request)


@hookimpl
def aegis_register_approval_handlers(register: Register) -> None:
    register("slack", SlackChannel, description="Block Kit approvals in $AEGIS_SLACK_CHANNEL")


@hookimpl
def aegis_register_routes(register: Register) -> None:
    register(INTERACTIVITY_PATH, interactivity, methods=["POST"])
