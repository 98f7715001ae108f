"""A stand-in for Slack on 127.0.0.1: the Web API methods the channel uses and a Socket Mode
websocket, speaking Slack's documented wire format, so the real slack-sdk clients run against it.

Web API: ``POST /api/<method>`` (JSON or form body, ``Authorization: Bearer``), answering
``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``; ``apps.connections.open`` (app-level
token) returns the websocket URL. Socket Mode: ``hello`` on connect, then envelopes
``{"envelope_id", "type", "accepts_response_payload", "payload"}`` that the client acks with
``{"envelope_id"[, "payload"]}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-1-test-app-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0AEGIS01"
TEAM = {"id": "T0AEGIS", "domain": "acme"}

#: Given the method and its arguments, a response to give instead of the normal one, or None.
Fault = Callable[[str, dict[str, Any]], web.Response | None]


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fault: Fault | None = None
        self.sockets: list[web.WebSocketResponse] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for ws in self.sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # -- Web API -------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            args: dict[str, Any] = await request.json()
        else:
            args = {**request.query, **(await request.post())}
        self.calls.append((method, args))
        if self.fault is not None:
            faulty = self.fault(method, args)
            if faulty is not None:
                return faulty
        auth = request.headers.get("Authorization", "")
        if method == "apps.connections.open":
            if auth != f"Bearer {APP_TOKEN}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            url = f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}&app_id=A0AEGIS"
            return web.json_response({"ok": True, "url": url})
        if auth != f"Bearer {BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            message = {"type": "message", "ts": ts, "text": args.get("text"), "bot_id": "B0AEGIS"}
            return web.json_response(
                {"ok": True, "channel": args["channel"], "ts": ts, "message": message}
            )
        if method == "chat.update":
            return web.json_response(
                {"ok": True, "channel": args["channel"], "ts": args["ts"], "text": args["text"]}
            )
        if method == "chat.postEphemeral":
            return web.json_response({"ok": True, "message_ts": f"{time.time():.6f}"})
        if method == "views.open":
            view = {"id": f"V{uuid.uuid4().hex[:8]}", **args["view"], "state": {"values": {}}}
            return web.json_response({"ok": True, "view": view})
        return web.json_response({"ok": False, "error": "unknown_method"}, status=404)

    def called(self, method: str) -> list[dict[str, Any]]:
        return [args for m, args in self.calls if m == method]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.called(method)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} was called {len(self.called(method))} times")
            await asyncio.sleep(0.02)
        return self.called(method)

    # -- Socket Mode ---------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.sockets) + 1,
                "debug_info": {"host": "applink-standin", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A0AEGIS"},
            }
        )
        self.sockets.append(ws)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                if "envelope_id" in data:
                    self.acks[data["envelope_id"]] = data
        return ws

    async def connected(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.sockets:
            if time.monotonic() > deadline:
                raise AssertionError("the Socket Mode client never connected")
            await asyncio.sleep(0.02)

    async def envelope(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one envelope to the connected app and return its ack."""
        await self.connected()
        envelope_id = str(uuid.uuid4())
        await self.sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "accepts_response_payload": kind == "interactive",
                "retry_attempt": 0,
                "retry_reason": "",
                "payload": payload,
            }
        )
        deadline = time.monotonic() + 5.0
        while envelope_id not in self.acks:
            if time.monotonic() > deadline:
                raise AssertionError(f"envelope {envelope_id} was never acknowledged")
            await asyncio.sleep(0.02)
        return self.acks[envelope_id]

    # -- what people do ------------------------------------------------------------------------

    def posted(self) -> list[dict[str, Any]]:
        return self.called("chat.postMessage")

    def button(self, message: dict[str, Any], action_id: str) -> dict[str, Any]:
        for block in message["blocks"]:
            for element in block.get("elements", []):
                if element.get("action_id") == action_id:
                    return dict(element)
        raise AssertionError(f"no {action_id} button in the message")


def block_actions(user: str, button: dict[str, Any], message_ts: str) -> dict[str, Any]:
    """The payload Slack sends when ``user`` clicks ``button`` on the message at ``message_ts``."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM["id"]},
        "api_app_id": "A0AEGIS",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL},
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**10}.abcdef",
        "team": TEAM,
        "channel": {"id": CHANNEL, "name": "approvals"},
        "message": {"type": "message", "ts": message_ts, "bot_id": "B0AEGIS"},
        "response_url": "https://hooks.slack.com/actions/T0AEGIS/1/abc",
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": "aegis",
                "text": button["text"],
                "value": button["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def view_submission(
    user: str, view: dict[str, Any], typed: dict[str, str] | None = None
) -> dict[str, Any]:
    """The payload for ``user`` submitting the modal ``view`` (as opened), after typing
    ``typed`` (block id -> text) over the inputs' initial values."""
    typed = typed or {}
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        text = typed.get(block["block_id"], element.get("initial_value"))
        values[block["block_id"]] = {
            element["action_id"]: {"type": "plain_text_input", "value": text}
        }
    return {
        "type": "view_submission",
        "team": TEAM,
        "user": {"id": user, "username": user.lower(), "team_id": TEAM["id"]},
        "api_app_id": "A0AEGIS",
        "trigger_id": f"{int(time.time())}.1.view",
        "view": {
            "id": "V0AEGIS",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "blocks": view["blocks"],
            "state": {"values": values},
        },
    }


def thread_reply(user: str | None, text: str, thread_ts: str, **extra: Any) -> dict[str, Any]:
    """An Events API ``event_callback`` for a message posted in a thread."""
    event: dict[str, Any] = {
        "type": "message",
        "channel": CHANNEL,
        "text": text,
        "ts": f"{time.time():.6f}",
        "thread_ts": thread_ts,
        "channel_type": "channel",
        **extra,
    }
    if user is not None:
        event["user"] = user
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM["id"],
        "api_app_id": "A0AEGIS",
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:10]}",
        "event_time": int(time.time()),
    }


def signed_form(
    payload: dict[str, Any], *, secret: str = SIGNING_SECRET, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """An interactivity callback as Slack sends it: ``payload=<json>`` form-encoded, signed
    ``v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")`` (computed here, not by the SDK)."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) if at is None else at)
    mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={mac}",
    }
    return body, headers
