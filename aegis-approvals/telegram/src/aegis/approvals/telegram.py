"""Approval channel: a Telegram message with an Approve / Deny inline keyboard.

Answers arrive as ``callback_query`` updates (a button press) or as a reply to the approval
message (``approve``, ``deny <reason>``, ``edit {"param": value}``), either by long polling
(``getUpdates``, run by this channel) or through ``POST /telegram/webhook`` on ``aegis serve``,
whose caller must present ``X-Telegram-Bot-Api-Secret-Token`` (compared in constant time).
The user checked is ``telegram:<from.id>`` — the numeric id Telegram puts in the update, never
a username. Both paths feed ``handle``; the core decides whether an answer counts.

Telegram caps ``callback_data`` at 64 bytes, so the core's 65-character callback token is
packed into 43 base64url characters (``a:<ref>`` is 45 bytes). The ref holds the request id
and a 128-bit HMAC of id and action digest under the audit store's secret: it cannot be made
up, and a reply names its request by the ref printed in the message it replies to.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from aegis.hookspecs import Register, hookimpl
from aegis.http import HttpRequest, HttpResponse
from aegis.runtime.approval.channels import ApprovalChannel, Responder, summary_text
from aegis.runtime.approval.retry import TryAgain, until
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.approval.tokens import compact as pack
from aegis.runtime.approval.tokens import expand as unpack

log = logging.getLogger("aegis.approvals.telegram")

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
REF = re.compile(r"^ref ([A-Za-z0-9_-]{43})$", re.MULTILINE)
HOWTO = 'Reply to this message with: approve · deny <reason> · edit {"param": value}'

#: A Bot API call to make in answer to an update: (method, arguments).
Call = tuple[str, dict[str, Any]]


def command(text: str) -> tuple[str, str | None, dict[str, Any] | None] | str:
    """A reply's text -> (verdict, reason, edits), or why it is not a command.

    Exact commands only: ``approve`` alone, ``deny`` with an optional reason, or ``edit``
    with a JSON object (any case) — a message that merely contains "approve" ("I
    disapprove") is not an answer, and neither is an approval with a condition after it
    ("approve but only 100"): that is not the action as it stands, and the action would run
    as it stands.
    """
    word, _, rest = text.strip().partition(" ")
    word, rest = word.lower(), rest.strip()
    if word == "approve":
        if rest:
            return (
                "approve takes nothing after it: to change the action, edit {...}; "
                "to refuse it, deny <reason>"
            )
        return "approve", None, None
    if word == "deny":
        return "deny", rest or None, None
    if word == "edit":
        try:
            edits = json.loads(rest)
        except json.JSONDecodeError as exc:
            return f"edit needs a JSON object of params: {exc.msg}"
        if not isinstance(edits, dict) or not edits:
            return 'edit needs a JSON object of params, e.g. edit {"amount": 10}'
        return "approve", None, edits
    return "not a command (approve · deny <reason> · edit {...})"


async def handle(
    update: Mapping[str, Any], responder: Responder, proof: str, bot_id: int | None = None
) -> Call | None:
    """One update -> the Bot API call that tells the person what became of it (or None)."""
    query = update.get("callback_query")
    if isinstance(query, dict):
        user, data = query.get("from") or {}, query.get("data")
        if not isinstance(data, str) or data[:2] not in ("a:", "d:"):
            return None
        if "id" not in user or "id" not in query:
            raise ValueError("a callback_query without id or from.id")
        verdict = "approve" if data.startswith("a:") else "deny"
        outcome = await responder.respond(
            unpack(data[2:]), str(user["id"]), verdict, None, None, proof
        )
        return "answerCallbackQuery", {
            "callback_query_id": query["id"],
            "text": outcome.message[:200],
            "show_alert": not outcome.accepted,
        }
    message = update.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return None
    original = message.get("reply_to_message") or {}
    author = original.get("from") or {}
    found = REF.search(original.get("text") or "")
    if found is None or author.get("is_bot") is not True:
        return None  # not a reply to one of our approval messages
    if "id" not in (message.get("from") or {}) or "id" not in (message.get("chat") or {}):
        raise ValueError("a message without from.id or chat.id")
    if bot_id is not None and author.get("id") != bot_id:
        return None
    parsed = command(message["text"])
    if isinstance(parsed, str):
        text = parsed
    else:
        verdict, reason, edits = parsed
        outcome = await responder.respond(
            unpack(found.group(1)), str(message["from"]["id"]), verdict, reason, edits, proof
        )
        text = outcome.message
    return "sendMessage", {
        "chat_id": message["chat"]["id"],
        "text": text[:4000],
        "reply_to_message_id": message["message_id"],
    }


def _text(request: ApprovalRequest, ref: str) -> str:
    body = summary_text(request)
    if request.state != "pending":
        body = f"{request.state.upper()} — {request.outcome or request.state}\n\n{body}"
    else:
        body = f"{body}\n\n{HOWTO}"
    return f"{body[:3900]}\nref {ref}"


def _bot_id(token: str) -> int | None:
    head = token.partition(":")[0]
    return int(head) if head.isdigit() else None


class TelegramChannel(ApprovalChannel):
    """Posts to a Telegram chat as a bot.

    ``token`` / ``chat_id`` default to ``$AEGIS_TELEGRAM_TOKEN`` / ``$AEGIS_TELEGRAM_CHAT_ID``.
    ``polling=False`` only posts and edits (answers then reach ``aegis serve``'s webhook).
    ``base_url`` is the Bot API root (``https://api.telegram.org/bot`` by default). Close it
    (``await channel.close()`` or ``async with``) to stop polling.
    """

    name: ClassVar[str] = "telegram"
    answers_with_tokens: ClassVar[bool] = True  # button data and links come from outside

    def __init__(
        self,
        chat_id: int | str | None = None,
        token: str | None = None,
        *,
        polling: bool = True,
        base_url: str | None = None,
        poll_timeout: int = 30,
    ) -> None:
        raw_chat = str(chat_id or os.environ.get("AEGIS_TELEGRAM_CHAT_ID", ""))
        if not raw_chat.lstrip("-").isdigit():
            raise ValueError("telegram channel: give chat_id= or set AEGIS_TELEGRAM_CHAT_ID")
        self.chat_id = int(raw_chat)
        token = token or os.environ.get("AEGIS_TELEGRAM_TOKEN", "")
        if not token:
            raise ValueError("telegram channel: give token= or set AEGIS_TELEGRAM_TOKEN")
        self.bot = Bot(token, base_url=base_url or "https://api.telegram.org/bot")
        self.bot_id = _bot_id(token)
        self.polling = polling
        self.poll_timeout = poll_timeout
        self._poller: asyncio.Task[None] | None = None
        #: request id -> (ref, message ids): an escalation posts the request again
        self._posted: dict[str, tuple[str, list[int]]] = {}
        self._responder: Responder | None = None

    async def __aenter__(self) -> TelegramChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        await self.bot.shutdown()

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        self._responder = responder
        if self.polling and self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())
        ref = pack(responder.token(request))
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Approve", callback_data=f"a:{ref}"),
                    InlineKeyboardButton("Deny", callback_data=f"d:{ref}"),
                ]
            ]
        )
        sent = await self._retry(
            lambda: self.bot.send_message(self.chat_id, _text(request, ref), reply_markup=keyboard),
            request.expires_at,
        )
        if sent is not None:
            self._posted.setdefault(request.id, (ref, []))[1].append(sent.message_id)

    async def settled(self, request: ApprovalRequest) -> None:
        ref, message_ids = self._posted.pop(request.id, ("", []))
        for message_id in message_ids:
            await self._retry(  # no reply_markup: the keyboard goes
                lambda m=message_id: self.bot.edit_message_text(  # type: ignore[misc]
                    _text(request, ref), chat_id=self.chat_id, message_id=m
                ),
                time.time() + 30,
            )

    async def _retry(self, call: Callable[[], Awaitable[Any]], deadline: float) -> Any:
        """``call`` until it works; 429 (``retry_after``), 5xx and network errors are retried
        with backoff until ``deadline``. None: gave up or refused."""

        async def attempt() -> Any:
            try:
                await self.bot.initialize()  # getMe, once; retried like any call
                return await call()
            except RetryAfter as exc:
                raise TryAgain(str(exc), _seconds(exc)) from exc
            except BadRequest as exc:
                log.warning("telegram refused the request: %s", exc)
                return None
            except NetworkError as exc:  # TimedOut, 5xx, connection errors
                raise TryAgain(f"{type(exc).__name__}: {exc}") from exc
            except TelegramError as exc:  # Forbidden, InvalidToken, Conflict: not transient
                log.warning("telegram refused the request: %s", exc)
                return None

        return await until(attempt, deadline, "telegram", log)

    async def _poll(self) -> None:
        """Long-poll ``getUpdates`` for button presses and replies, for as long as we run."""
        offset: int | None = None
        delay = 0.5
        while True:
            try:
                await self.bot.initialize()
                updates = await self.bot.get_updates(
                    offset=offset,
                    timeout=self.poll_timeout,
                    allowed_updates=["callback_query", "message"],
                )
                delay = 0.5
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc))
                continue
            except TelegramError as exc:
                log.warning("telegram getUpdates failed (retrying in %.1f s): %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            for update in updates:
                offset = update.update_id + 1
                try:
                    await self._dispatch(update.to_dict())
                except Exception:
                    log.exception("telegram update %s could not be handled", update.update_id)

    async def _dispatch(self, update: dict[str, Any]) -> None:
        if self._responder is None:
            return
        proof = f"telegram getUpdates update {update.get('update_id')}"
        call = await handle(update, self._responder, proof, self.bot_id)
        if call is None:
            return
        method, args = call
        if method == "answerCallbackQuery":
            await self._retry(
                lambda: self.bot.answer_callback_query(
                    args["callback_query_id"], args["text"], show_alert=args["show_alert"]
                ),
                time.time() + 10,
            )
        else:
            await self._retry(
                lambda: self.bot.send_message(
                    args["chat_id"], args["text"], reply_to_message_id=args["reply_to_message_id"]
                ),
                time.time() + 10,
            )


def _seconds(exc: RetryAfter) -> float:
    value: Any = exc._retry_after  # a timedelta; the public property may warn about ints
    return min(float(value.total_seconds() if isinstance(value, dt.timedelta) else value), 60.0)


_SEEN: dict[int, None] = {}


async def webhook(request: HttpRequest) -> HttpResponse:
    """``POST /telegram/webhook``: updates Telegram pushes, with the secret token we set."""
    secret = os.environ.get("AEGIS_TELEGRAM_WEBHOOK_SECRET", "")
    if request.context is None or len(secret) < 16:
        return HttpResponse.json(
            {"error": "not configured: set AEGIS_TELEGRAM_WEBHOOK_SECRET"}, 503
        )
    given = request.header(SECRET_HEADER) or ""
    if not hmac.compare_digest(given.encode(), secret.encode()):
        return HttpResponse.json({"error": "forbidden"}, 403)
    try:
        update = json.loads(request.body)
        update_id = int(update["update_id"])
    except (ValueError, KeyError, TypeError):
        return HttpResponse.json({"error": "bad request"}, 400)
    if update_id in _SEEN:  # Telegram re-sends an update it got no 2xx for; never twice here
        return HttpResponse.json({"ok": True, "detail": "already handled"})
    _SEEN[update_id] = None
    while len(_SEEN) > 4096:
        del _SEEN[next(iter(_SEEN))]
    token = os.environ.get("AEGIS_TELEGRAM_TOKEN", "")
    responder = request.context.responder("telegram")
    try:
        call = await handle(update, responder, f"telegram webhook {update_id}", _bot_id(token))
    except (KeyError, TypeError, ValueError) as exc:  # a malformed update: nothing reported
        return HttpResponse.json({"error": "bad request", "detail": repr(exc)}, 400)
    if call is None:
        return HttpResponse.json({"ok": True})
    method, args = call
    return HttpResponse.json({"method": method, **args})  # answered in the webhook's response


@hookimpl
def aegis_register_approval_handlers(register: Register) -> None:
    register(
        "telegram", TelegramChannel, description="Telegram inline keyboard ($AEGIS_TELEGRAM_TOKEN)"
    )


@hookimpl
def aegis_register_routes(register: Register) -> None:
    register(WEBHOOK_PATH, webhook, methods=["POST"])
