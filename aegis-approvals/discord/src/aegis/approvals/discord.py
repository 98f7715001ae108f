"""Approval channel: a Discord message with Approve / Deny / Edit buttons.

Clicks arrive either through the gateway (a ``discord.py`` client this channel runs) or
through ``POST /discord/interactions`` on ``aegis serve`` (Discord's HTTP interactions,
verified with Ed25519 over timestamp + raw body before anything is parsed). Both paths feed
one function, ``answer``, which turns a click or a modal into ``responder.respond``: the core
decides whether it counts (token binding, the ``discord:<user id>`` allow list, quorum,
expiry) and stores every attempt.

Button ``custom_id``\\ s are ``aegis:<verb>:<ref>`` where ``ref`` is the core's callback token
(request id + a 128-bit HMAC of id and action digest under the store's secret) packed into
43 base64url characters: 51 characters in all, inside Discord's 100. Only the core can mint
a valid ref, so a forged ``custom_id`` names no request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import aiohttp
import attrs
import discord
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from discord.http import Route

from aegis.hookspecs import Register, hookimpl
from aegis.http import HttpRequest, HttpResponse
from aegis.runtime.approval.channels import ApprovalChannel, Responder, summary_text
from aegis.runtime.approval.store import ApprovalRequest

log = logging.getLogger("aegis.approvals.discord")

INTERACTIONS_PATH = "/discord/interactions"
PREFIX = "aegis:"
#: Signed interactions older (or newer) than this are refused as stale.
WINDOW = 300.0
EPHEMERAL = 64
Lookup = Callable[[str], Awaitable[ApprovalRequest | None]]


# -- the compact ref in custom_id ---------------------------------------------------------------


def pack(token: str) -> str:
    """``<32 hex id>.<32 hex mac>`` -> 43 base64url characters (any other form is kept)."""
    rid, _, mac = token.partition(".")
    try:
        raw = bytes.fromhex(rid) + bytes.fromhex(mac)
    except ValueError:
        return token
    if len(raw) != 32:
        return token
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unpack(ref: str) -> str:
    """The core's token back from ``pack``; anything unexpected passes through (and the core
    then refuses it as naming no request)."""
    if len(ref) != 43 or "." in ref:
        return ref
    try:
        raw = base64.urlsafe_b64decode(ref + "=")
    except (binascii.Error, ValueError):
        return ref
    return f"{raw[:16].hex()}.{raw[16:].hex()}"


# -- what a click turns into --------------------------------------------------------------------


@attrs.frozen
class Say:
    """Answer the clicking user privately (an ephemeral message)."""

    text: str


@attrs.frozen
class Ask:
    """Open a modal with one text field (a deny reason, or the params to change)."""

    custom_id: str
    title: str
    label: str
    field: str
    default: str = ""
    required: bool = False


Reply = Say | Ask


def _values(components: Any) -> dict[str, str]:
    """Text-input values of a modal submit, by custom_id (action rows or label wrappers)."""
    found: dict[str, str] = {}
    stack = list(components) if isinstance(components, list) else []
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("custom_id"), str) and isinstance(item.get("value"), str):
            found[item["custom_id"]] = item["value"]
        stack += item.get("components") or []
        if isinstance(item.get("component"), dict):
            stack.append(item["component"])
    return found


def _edits(text: str, shown: Mapping[str, Any]) -> dict[str, Any] | str:
    """The params the approver changed (keys whose value differs from what was shown)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg} (line {exc.lineno})"
    if not isinstance(data, dict):
        return "give a JSON object of params"
    return {k: v for k, v in data.items() if k not in shown or shown[k] != v}


async def answer(
    kind: int,
    data: Mapping[str, Any],
    user_id: str,
    responder: Responder,
    proof: str,
    lookup: Lookup | None = None,
) -> Reply | None:
    """One component click (``kind`` 3) or modal submit (5) -> what to tell the user.

    None: not ours (another bot feature's custom_id); leave it alone.
    """
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.startswith(PREFIX):
        return None
    verb, _, ref = custom_id.removeprefix(PREFIX).partition(":")
    token = unpack(ref)
    if kind == 3 and verb == "deny":
        return Ask(f"{PREFIX}why:{ref}", "Deny: why?", "Reason (optional)", "reason")
    if kind == 3 and verb == "edit":
        found = await lookup(token) if lookup is not None else None
        shown = json.dumps(found.params if found else {}, indent=1, ensure_ascii=False)
        default = shown if len(shown) <= 4000 else ""
        return Ask(
            f"{PREFIX}edited:{ref}",
            "Edit, then approve",
            "Params (JSON)",
            "params",
            default,
            required=True,
        )
    if kind == 3 and verb == "approve":
        outcome = await responder.respond(token, user_id, "approve", None, None, proof)
    elif kind == 5 and verb == "why":
        reason = _values(data.get("components")).get("reason", "").strip() or None
        outcome = await responder.respond(token, user_id, "deny", reason, None, proof)
    elif kind == 5 and verb == "edited":
        found = await lookup(token) if lookup is not None else None
        edits = _edits(
            _values(data.get("components")).get("params", ""), found.params if found else {}
        )
        if isinstance(edits, str):
            return Say(f"Edit not sent: {edits}")
        if not edits:
            return Say("Nothing changed: use Approve to approve as is.")
        outcome = await responder.respond(token, user_id, "approve", None, edits, proof)
    else:
        return Say("Unknown Aegis button.")
    return Say(outcome.message if not outcome.accepted else f"Recorded: {outcome.message}")


def _components(ref: str) -> list[dict[str, Any]]:
    def button(label: str, style: int, verb: str) -> dict[str, Any]:
        return {"type": 2, "style": style, "label": label, "custom_id": f"{PREFIX}{verb}:{ref}"}

    return [
        {
            "type": 1,
            "components": [
                button("Approve", 3, "approve"),
                button("Deny", 4, "deny"),
                button("Edit", 2, "edit"),
            ],
        }
    ]


def _text(request: ApprovalRequest) -> str:
    text = summary_text(request)
    if request.state != "pending":
        text = f"**{request.state.upper()}** — {request.outcome or request.state}\n{text}"
    return text if len(text) <= 2000 else text[:1990] + " …"


# -- the channel --------------------------------------------------------------------------------


class DiscordChannel(ApprovalChannel):
    """Posts to a Discord text channel as a bot.

    ``token`` / ``channel_id`` default to ``$AEGIS_DISCORD_TOKEN`` /
    ``$AEGIS_DISCORD_CHANNEL_ID``. ``gateway=False`` only posts and edits (clicks then reach
    ``aegis serve`` through the interactions endpoint). Close it (``await channel.close()`` or
    ``async with``) to stop its gateway connection.
    """

    name: ClassVar[str] = "discord"

    def __init__(
        self,
        channel_id: int | str | None = None,
        token: str | None = None,
        *,
        gateway: bool = True,
    ) -> None:
        raw_channel = channel_id or os.environ.get("AEGIS_DISCORD_CHANNEL_ID", "")
        if not str(raw_channel).isdigit():
            raise ValueError("discord channel: give channel_id= or set AEGIS_DISCORD_CHANNEL_ID")
        self.channel_id = int(raw_channel)
        self.token = token or os.environ.get("AEGIS_DISCORD_TOKEN", "")
        if not self.token:
            raise ValueError("discord channel: give token= or set AEGIS_DISCORD_TOKEN")
        self.gateway = gateway
        self.client: discord.Client | None = None
        self._connect: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: request id -> (request, message ids): an escalation posts the request again
        self._posted: dict[str, tuple[ApprovalRequest, list[int]]] = {}
        self._responder: Responder | None = None
        self._seen: collections.deque[int] = collections.deque(maxlen=4096)

    async def __aenter__(self) -> DiscordChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self._connect is not None:
            self._connect.cancel()
            await asyncio.gather(self._connect, return_exceptions=True)
        self.client, self._connect = None, None

    async def _ready(self) -> discord.Client:
        async with self._lock:
            if self.client is None:
                client = discord.Client(intents=discord.Intents.none())
                client.event(self.on_interaction)
                try:
                    await client.login(self.token)
                except BaseException:
                    await client.close()
                    raise
                self.client = client
                if self.gateway:
                    self._connect = asyncio.ensure_future(client.connect(reconnect=True))
            return self.client

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        self._responder = responder
        ref = pack(responder.token(request))
        payload = {
            "content": _text(request),
            "components": _components(ref),
            "allowed_mentions": {"parse": []},
        }
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=self.channel_id)
        sent = await self._retry(lambda c: c.http.request(route, json=payload), request.expires_at)
        if isinstance(sent, dict):
            self._posted.setdefault(request.id, (request, []))[1].append(int(sent["id"]))

    async def settled(self, request: ApprovalRequest) -> None:
        _, message_ids = self._posted.pop(request.id, (request, []))
        payload = {"content": _text(request), "components": []}
        for message_id in message_ids:
            route = Route(
                "PATCH",
                "/channels/{channel_id}/messages/{message_id}",
                channel_id=self.channel_id,
                message_id=message_id,
            )
            await self._retry(
                lambda c, r=route: c.http.request(r, json=payload),  # type: ignore[misc]
                time.time() + 30,
            )

    async def _retry(
        self, call: Callable[[discord.Client], Awaitable[Any]], deadline: float
    ) -> Any:
        """``call`` until it works, retrying 429 / 5xx / network errors with backoff until
        ``deadline`` (discord.py already waits out 429s it is told about). None: gave up."""
        delay = 0.5
        while True:
            try:
                return await call(await self._ready())
            except discord.HTTPException as exc:
                if exc.status != 429 and exc.status < 500:
                    log.warning("discord refused the request: %s", exc)
                    return None
                why = f"HTTP {exc.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            if time.time() + delay >= deadline:
                log.warning("discord unreachable, gave up: %s", why)
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _lookup(self, token: str) -> ApprovalRequest | None:
        rid = token.partition(".")[0]
        posted = self._posted.get(rid)
        return posted[0] if posted else None

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Gateway path: the gateway is an authenticated connection, so the click is Discord's."""
        responder = self._responder
        if responder is None or interaction.id in self._seen or interaction.data is None:
            return
        self._seen.append(interaction.id)
        data: Mapping[str, Any] = interaction.data
        proof = f"discord gateway interaction {interaction.id}"
        reply = await answer(
            interaction.type.value, data, str(interaction.user.id), responder, proof, self._lookup
        )
        if isinstance(reply, Say):
            await interaction.response.send_message(reply.text, ephemeral=True)
        elif isinstance(reply, Ask):
            modal = discord.ui.Modal(title=reply.title, custom_id=reply.custom_id)
            modal.add_item(
                discord.ui.TextInput(
                    label=reply.label,
                    custom_id=reply.field,
                    style=discord.TextStyle.paragraph,
                    default=reply.default or None,
                    required=reply.required,
                )
            )
            await interaction.response.send_modal(modal)


# -- the HTTP interactions endpoint -------------------------------------------------------------


def verify(
    public_key: str, body: bytes, headers: Mapping[str, str], now: float | None = None
) -> str:
    """'' when ``body`` carries Discord's valid, fresh Ed25519 signature; else why not."""
    lower = {k.lower(): v for k, v in headers.items()}
    signature, ts = lower.get("x-signature-ed25519", ""), lower.get("x-signature-timestamp", "")
    if not ts.isdigit() or not signature:
        return "missing or malformed signature headers"
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        key.verify(bytes.fromhex(signature), ts.encode() + body)
    except (ValueError, InvalidSignature):
        return "bad signature"
    if abs((time.time() if now is None else now) - int(ts)) > WINDOW:
        return "stale timestamp"
    return ""


_SEEN_HTTP: collections.OrderedDict[str, None] = collections.OrderedDict()


def _reply_json(reply: Reply) -> dict[str, Any]:
    if isinstance(reply, Say):
        return {"type": 4, "data": {"content": reply.text, "flags": EPHEMERAL}}
    field = {
        "type": 4,
        "custom_id": reply.field,
        "style": 2,
        "label": reply.label,
        "required": reply.required,
        **({"value": reply.default} if reply.default else {}),
    }
    return {
        "type": 9,
        "data": {
            "custom_id": reply.custom_id,
            "title": reply.title,
            "components": [{"type": 1, "components": [field]}],
        },
    }


async def interactions(request: HttpRequest) -> HttpResponse:
    """``POST /discord/interactions``: Discord's signed HTTP interactions (PING, clicks, modals)."""
    public_key = os.environ.get("AEGIS_DISCORD_PUBLIC_KEY", "")
    if request.context is None or len(public_key) != 64:
        return HttpResponse.json({"error": "not configured: set AEGIS_DISCORD_PUBLIC_KEY"}, 503)
    problem = verify(public_key, request.body, request.headers)
    if problem:
        return HttpResponse.json({"error": "invalid request signature", "detail": problem}, 401)
    try:
        payload = json.loads(request.body)
        kind, interaction_id = int(payload["type"]), str(payload["id"])
    except (ValueError, KeyError, TypeError):
        return HttpResponse.json({"error": "bad request"}, 400)
    if kind == 1:
        return HttpResponse.json({"type": 1})
    if interaction_id in _SEEN_HTTP:
        return HttpResponse.json({"error": "replayed interaction"}, 409)
    _SEEN_HTTP[interaction_id] = None
    while len(_SEEN_HTTP) > 4096:
        _SEEN_HTTP.popitem(last=False)
    user = (payload.get("member") or {}).get("user") or payload.get("user") or {}
    data = payload.get("data")
    if not isinstance(data, dict) or not str(user.get("id", "")).isdigit():
        return HttpResponse.json({"error": "bad request", "detail": "no data or user"}, 400)
    book = request.context.store.approvals

    async def lookup(token: str) -> ApprovalRequest | None:
        try:
            return await book.run(book.get, token)
        except Exception:  # an unknown or forged ref: the answer itself is refused by the core
            return None

    ts, signature = request.header("x-signature-timestamp"), request.header("x-signature-ed25519")
    proof = f"ed25519 t={ts} sig={signature}"
    responder = request.context.responder("discord")
    reply = await answer(kind, data, str(user["id"]), responder, proof, lookup)
    if reply is None:
        reply = Say("Not an Aegis button.")
    return HttpResponse.json(_reply_json(reply))


@hookimpl
def aegis_register_approval_handlers(register: Register) -> None:
    register("discord", DiscordChannel, description="Discord buttons ($AEGIS_DISCORD_TOKEN)")


@hookimpl
def aegis_register_routes(register: Register) -> None:
    register(INTERACTIONS_PATH, interactions, methods=["POST"])
