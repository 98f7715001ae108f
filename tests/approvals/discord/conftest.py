"""A local stand-in for Discord: REST (``/api/v10``) and the gateway (``/gw``) on 127.0.0.1.

It speaks the documented wire formats closely enough for the real discord.py client: HELLO /
IDENTIFY / READY / heartbeats on the gateway, ``INTERACTION_CREATE`` events pushed on demand,
rate-limit (429 with ``retry_after``) and 5xx answers when a test asks for them, and every
JSON answer with the exact ``Content-Type: application/json`` discord.py insists on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord.http
import pytest
import yarl
from aiohttp import WSMsgType, web
from discord.gateway import DiscordWebSocket

APP_ID = "1100000000000000001"
BOT = {
    "id": APP_ID,
    "username": "aegis-bot",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
    "flags": 0,
}
CHANNEL_ID = "1200000000000000002"
_ids = itertools.count(1300000000000000000)


def snowflake() -> str:
    return str(next(_ids))


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class Discord:
    """What the bot posted, edited and answered; ``fail`` makes the next REST calls fail."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.callbacks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.posted = asyncio.Event()
        self.edited = asyncio.Event()
        self.sockets: list[web.WebSocketResponse] = []
        self.identified = asyncio.Event()
        self.post_attempts = 0
        #: Called for each message POST; return a Response to fail it, None to go on.
        self.fail: Callable[[], web.Response | None] = lambda: None
        self.seq = 1
        self.port = 0

    # -- REST ----------------------------------------------------------------------------------

    async def me(self, request: web.Request) -> web.Response:
        return _json(BOT)

    async def application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": APP_ID,
                "name": "Aegis",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": {**BOT, "id": "1000000000000000009", "bot": False},
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "summary": "",
            }
        )

    async def post_message(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bot bot-token"
        self.post_attempts += 1
        failure = self.fail()
        if failure is not None:
            return failure
        body = await request.json()
        message = {
            "id": snowflake(),
            "channel_id": request.match_info["channel"],
            "author": BOT,
            "content": body["content"],
            "components": body.get("components", []),
            "timestamp": "2026-12-01T21:00:00.000000+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        self.messages.append(message)
        self.posted.set()
        return _json(message)

    async def patch_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.edits.append({"id": request.match_info["message"], **body})
        self.edited.set()
        return _json({**self.messages[-1], **body, "edited_timestamp": "2026-12-01T21:01:00Z"})

    async def callback(self, request: web.Request) -> web.Response:
        body = await request.json()
        future = self.callbacks.setdefault(
            request.match_info["id"], asyncio.get_running_loop().create_future()
        )
        if not future.done():
            future.set_result(body)
        return _json(
            {
                "interaction": {
                    "id": request.match_info["id"],
                    "type": 3,
                    "response_message_loading": False,
                    "response_message_ephemeral": body.get("data", {}).get("flags") == 64,
                }
            }
        )

    # -- gateway -------------------------------------------------------------------------------

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["op"] == 2:
                assert frame["d"]["token"] == "bot-token"
                await ws.send_str(json.dumps(self._event("READY", self._ready())))
                self.identified.set()
            elif frame["op"] == 1:
                await ws.send_str(json.dumps({"op": 11}))
        return ws

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": BOT,
            "guilds": [],
            "session_id": "session-1",
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gw",
            "application": {"id": APP_ID, "flags": 0},
        }

    def _event(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        return {"op": 0, "t": name, "s": self.seq, "d": data}

    def interaction(self, kind: int, data: dict[str, Any], user: str) -> dict[str, Any]:
        """An interaction as Discord sends it (gateway event body or HTTP request body)."""
        return {
            "id": snowflake(),
            "application_id": APP_ID,
            "type": kind,
            "data": data,
            "channel_id": CHANNEL_ID,
            "user": {**BOT, "id": user, "username": f"user{user[-2:]}", "bot": False},
            "token": f"interaction-token-{snowflake()}",
            "version": 1,
            "app_permissions": "0",
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"1": user},
            "context": 1,
            "attachment_size_limit": 10485760,
        }

    async def push(self, kind: int, data: dict[str, Any], user: str) -> dict[str, Any]:
        """Send an INTERACTION_CREATE down the gateway; the bot's callback body comes back."""
        await asyncio.wait_for(self.identified.wait(), 10)
        payload = self.interaction(kind, data, user)
        future = self.callbacks.setdefault(
            payload["id"], asyncio.get_running_loop().create_future()
        )
        await self.sockets[-1].send_str(json.dumps(self._event("INTERACTION_CREATE", payload)))
        return await asyncio.wait_for(future, 10)

    async def click(self, message: dict[str, Any], label: str, user: str) -> dict[str, Any]:
        return await self.push(3, {"custom_id": button(message, label), "component_type": 2}, user)


def button(message: dict[str, Any], label: str) -> str:
    for row in message["components"]:
        for item in row["components"]:
            if item.get("label") == label:
                return str(item["custom_id"])
    raise AssertionError(f"no {label} button in {message['components']}")


def modal_submit(custom_id: str, field: str, value: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": field, "value": value}]}
        ],
    }


@pytest.fixture
async def discord_api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Discord]:
    stand_in = Discord()
    app = web.Application()
    app.router.add_get("/api/v10/users/@me", stand_in.me)
    app.router.add_get("/api/v10/oauth2/applications/@me", stand_in.application)
    app.router.add_post("/api/v10/channels/{channel}/messages", stand_in.post_message)
    app.router.add_patch("/api/v10/channels/{channel}/messages/{message}", stand_in.patch_message)
    app.router.add_post("/api/v10/interactions/{id}/{token}/callback", stand_in.callback)
    app.router.add_get("/gw", stand_in.gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{stand_in.port}/api/v10")
    monkeypatch.setattr(
        DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(f"ws://127.0.0.1:{stand_in.port}/gw")
    )
    yield stand_in
    for ws in stand_in.sockets:
        await ws.close()
    await runner.cleanup()
