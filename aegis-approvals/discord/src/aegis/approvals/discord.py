"""Approval channel: a Discord message with Approve / Deny / Edit buttons.

Clicks arrive either through the gateway (a ``discord.py`` client this channel runs) or
through ``POST /discord/interactions`` on ``aegis serve`` (Discord's HTTP interactions,
verified with Ed25519 over timestamp + raw body before anything is parsed:
``discord_interactions``). Both paths feed one function, ``discord_clicks.answer``, which
turns a click or a modal into ``responder.respond``: the core decides whether it counts
(token binding, the ``discord:<user id>`` allow list, quorum, expiry) and stores every
attempt. This module is the channel (posting, editing, the gateway) and the plugin's hooks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import aiohttp
import discord
from aegis.approvals.discord_clicks import (
    PREFIX,
    Ask,
    Lookup,
    Reply,
    Say,
    answer,
    components,
)
from aegis.approvals.discord_interactions import (
    EPHEMERAL,
    INTERACTIONS_PATH,
    WINDOW,
    interactions,
    verify,
)
from discord.http import Route

from aegis.hookspecs import Register, hookimpl
from aegis.runtime.approval.channels import ApprovalChannel, Responder, summary_text
from aegis.runtime.approval.retry import TryAgain, until
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.approval.tokens import compact as pack
from aegis.runtime.approval.tokens import expand as unpack

log = logging.getLogger("aegis.approvals.discord")

__all__ = [
    "EPHEMERAL",
    "INTERACTIONS_PATH",
    "PREFIX",
    "WINDOW",
    "Ask",
    "DiscordChannel",
    "Lookup",
    "Reply",
    "Say",
    "aegis_register_approval_handlers",
    "aegis_register_routes",
    "answer",
    "interactions",
    "pack",
    "unpack",
    "verify",
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
    answers_with_tokens: ClassVar[bool] = True  # button data and links come from outside

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
            "components": components(ref),
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

        async def attempt() -> Any:
            try:
                return await call(await self._ready())
            except discord.HTTPException as exc:
                if exc.status != 429 and exc.status < 500:
                    log.warning("discord refused the request: %s", exc)
                    return None
                raise TryAgain(f"HTTP {exc.status}") from exc
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise TryAgain(f"{type(exc).__name__}: {exc}") from exc

        return await until(attempt, deadline, "discord", log)

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


@hookimpl
def aegis_register_approval_handlers(register: Register) -> None:
    register("discord", DiscordChannel, description="Discord buttons ($AEGIS_DISCORD_TOKEN)")


@hookimpl
def aegis_register_routes(register: Register) -> None:
    register(INTERACTIONS_PATH, interactions, methods=["POST"])
