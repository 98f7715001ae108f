"""A local stand-in for the Telegram Bot API on 127.0.0.1 (``/bot<token>/<method>``).

It takes form-encoded POSTs as python-telegram-bot sends them, answers ``{"ok": true,
"result": ...}``, holds ``getUpdates`` long polls open until an update is queued, and can
answer with flood control (429 + ``parameters.retry_after``) or 5xx when a test asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

TOKEN = "123456:TEST-token-for-a-local-stand-in"
BOT_ID = 123456
CHAT_ID = -1001234567890
BOT = {"id": BOT_ID, "is_bot": True, "first_name": "Aegis", "username": "aegis_test_bot"}


def user(uid: int) -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": f"User{uid}", "username": f"user{uid}"}


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


class Telegram:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.new_update = asyncio.Event()
        self.posted = asyncio.Event()
        self.edited = asyncio.Event()
        self.answered = asyncio.Event()
        self.send_attempts = 0
        #: Called for each sendMessage; return a Response to fail it, None to go on.
        self.fail: Callable[[], web.Response | None] = lambda: None
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(random.randrange(10**6, 10**9))  # ids are per bot
        self.base_url = ""

    async def method(self, request: web.Request) -> web.Response:
        assert request.match_info["token"] == TOKEN
        name = request.match_info["method"]
        form = dict(await request.post())
        if name == "getMe":
            return _ok(BOT)
        if name == "getUpdates":
            return await self.get_updates(form)
        if name == "sendMessage":
            self.send_attempts += 1
            failure = self.fail()
            if failure is not None:
                return failure
            return _ok(self.send(form))
        if name == "editMessageText":
            self.edits.append(form)
            self.edited.set()
            return _ok({**self._message(str(form["text"])), "message_id": int(form["message_id"])})
        if name == "answerCallbackQuery":
            self.answers.append(form)
            self.answered.set()
            return _ok(True)
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    def _message(self, text: str, **extra: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._ids),
            "from": BOT,
            "chat": {"id": CHAT_ID, "type": "supergroup", "title": "approvals"},
            "date": int(time.time()),
            "text": text,
            **extra,
        }

    def send(self, form: dict[str, Any]) -> dict[str, Any]:
        extra = {}
        if "reply_markup" in form:
            extra["reply_markup"] = json.loads(form["reply_markup"])
        message = self._message(str(form["text"]), **extra)
        if "reply_to_message_id" in form or "reply_parameters" in form:
            self.replies.append(form)
        else:
            self.messages.append(message)
            self.posted.set()
        return message

    async def get_updates(self, form: dict[str, Any]) -> web.Response:
        offset = int(form.get("offset", 0))
        deadline = time.monotonic() + min(float(form.get("timeout", 0)), 2.0)
        while True:
            ready = [u for u in self.updates if u["update_id"] >= offset]
            if ready or time.monotonic() >= deadline:
                return _ok(ready)
            self.new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.new_update.wait(), deadline - time.monotonic())

    def update(self, **body: Any) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **body}
        return update

    def queue(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self.new_update.set()

    def press(self, message: dict[str, Any], label: str, uid: int) -> dict[str, Any]:
        (row,) = message["reply_markup"]["inline_keyboard"]
        data = next(b["callback_data"] for b in row if b["text"] == label)
        return self.update(
            callback_query={
                "id": f"cbq-{next(self._ids)}",
                "from": user(uid),
                "message": message,
                "chat_instance": "-8811223344",
                "data": data,
            }
        )

    def reply(self, message: dict[str, Any], text: str, uid: int) -> dict[str, Any]:
        return self.update(
            message={
                "message_id": next(self._ids),
                "from": user(uid),
                "chat": message["chat"],
                "date": int(time.time()),
                "text": text,
                "reply_to_message": message,
            }
        )


@pytest.fixture
async def telegram_api() -> AsyncIterator[Telegram]:
    stand_in = Telegram()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", stand_in.method)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stand_in.base_url = f"http://127.0.0.1:{port}/bot"
    yield stand_in
    stand_in.new_update.set()
    await runner.cleanup()
