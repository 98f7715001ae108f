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
Both ways in feed one ``Answers`` (``slack_answers``, with the Web API calls it makes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs

from aegis.approvals.slack_answers import Answers, Lookup, call, web_client
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from aegis.approvals import slack_blocks as ui
from aegis.errors import ApprovalError
from aegis.hookspecs import Register, hookimpl
from aegis.http import HttpRequest, HttpResponse
from aegis.runtime.approval.channels import ApprovalChannel, Responder, summary_text
from aegis.runtime.approval.store import ApprovalRequest

log = logging.getLogger("aegis.approvals.slack")

__all__ = [
    "INTERACTIVITY_PATH",
    "WINDOW",
    "Answers",
    "Interactivity",
    "Lookup",
    "SlackChannel",
    "aegis_register_approval_handlers",
    "aegis_register_routes",
    "call",
    "interactivity",
    "web_client",
]

INTERACTIVITY_PATH = "/slack/interactivity"
WINDOW = 300  # seconds a signed callback stays acceptable (Slack's documented five minutes)


class SlackChannel(ApprovalChannel):
    """Posts requests to a Slack channel; answers come over Socket Mode or the HTTP route.

    ``channel``, ``token`` and ``app_token`` default to ``$AEGIS_SLACK_CHANNEL``,
    ``$SLACK_BOT_TOKEN`` and ``$SLACK_APP_TOKEN``. Without an app token there is no Socket
    Mode: clicks reach ``aegis serve`` at ``/slack/interactivity`` and thread replies are not
    read. The Socket Mode connection opens with the first request and stays open until
    ``aclose()`` (or the end of ``async with channel:``).
    """

    name: ClassVar[str] = "slack"
    answers_with_tokens: ClassVar[bool] = True  # button data and links come from outside

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
