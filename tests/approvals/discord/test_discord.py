"""The Discord channel: the real discord.py client against a local stand-in REST + gateway,
and the HTTP interactions endpoint with real Ed25519 signatures."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aegis.approvals.discord import INTERACTIONS_PATH, DiscordChannel, interactions, pack, unpack
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from aegis import Action, Policy
from aegis.core.result import ResultStatus
from aegis.http import HttpRequest, HttpResponse, RouteContext
from aegis.runtime.audit import AuditStore
from conftest import CHANNEL_ID, Discord, button, modal_submit
from plugin_helpers import ChannelRun, payment_policy

ALICE, BOB, EVE = "2000000000000000001", "2000000000000000002", "2000000000000000666"
KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def policy(approvers: str = f'["discord:{ALICE}", "discord:{BOB}"]') -> Policy:
    return payment_policy(approvers)


@pytest.fixture(autouse=True)
def _public_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_DISCORD_PUBLIC_KEY", PUBLIC)


def run_with(store: AuditStore, pol: Policy, timeout: float, gateway: bool) -> ChannelRun:
    return ChannelRun(store, DiscordChannel(CHANNEL_ID, "bot-token", gateway=gateway), pol, timeout)


async def start(
    store: AuditStore,
    api: Discord,
    pol: Policy | None = None,
    *,
    timeout: float = 15,
    gateway: bool = True,
) -> tuple[ChannelRun, dict[str, Any]]:
    run = run_with(store, pol or policy(), timeout, gateway)
    await asyncio.wait_for(api.posted.wait(), 10)
    return run, api.messages[-1]


async def edited(api: Discord) -> dict[str, Any]:
    await asyncio.wait_for(api.edited.wait(), 10)
    return api.edits[-1]


def test_refs_are_compact_and_round_trip() -> None:
    token = "0123456789abcdef0123456789abcdef.fedcba9876543210fedcba9876543210"
    ref = pack(token)
    assert len(ref) == 43 and unpack(ref) == token
    assert len(f"aegis:edited:{ref}") <= 100
    assert unpack("not-a-ref") == "not-a-ref"


async def test_gateway_click_approves_and_the_message_says_by_whom(
    store: AuditStore, discord_api: Discord
) -> None:
    run, message = await start(store, discord_api)
    assert "pay -> bank" in message["content"] and "[REDACTED]" in message["content"]
    assert "sk-live" not in message["content"] and "big_payment" in message["content"]
    reply = await discord_api.click(message, "Approve", ALICE)
    assert reply["type"] == 4 and reply["data"]["flags"] == 64
    assert "approved by discord:" + ALICE in reply["data"]["content"]
    result = await run.result()
    assert result.ok and len(run.executor.ran) == 1
    edit = await edited(discord_api)
    assert (
        edit["components"] == [] and f"APPROVED** — approved by discord:{ALICE}" in edit["content"]
    )
    (rec,) = store.query(limit=None)
    assert rec.approver == f"discord:{ALICE}"


async def test_deny_opens_a_modal_and_the_reason_reaches_the_result(
    store: AuditStore, discord_api: Discord
) -> None:
    run, message = await start(store, discord_api)
    modal = await discord_api.click(message, "Deny", BOB)
    assert modal["type"] == 9 and modal["data"]["title"] == "Deny: why?"
    submit = modal_submit(modal["data"]["custom_id"], "reason", "wrong account")
    reply = await discord_api.push(5, submit, BOB)
    assert "denied by discord:" + BOB in reply["data"]["content"]
    result = await run.result()
    assert run.executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.reason == "denied: wrong account"
    assert "DENIED** — denied by" in (await edited(discord_api))["content"]


async def test_an_edit_inside_a_nested_param_keeps_its_secret(
    store: AuditStore, discord_api: Discord
) -> None:
    """The edit sent back was the whole top-level value that changed: a nested mapping with a
    secret in it came back holding the ``[REDACTED]`` it was shown, and the core refused the
    edit (it would have run with the marker in place of the key)."""
    nested = Action(
        "pay", "bank", params={"wire": {"amount": 5000, "api_key": "sk-live-abcdefghijklmnop1234"}}
    )
    run = ChannelRun(
        store,
        DiscordChannel(CHANNEL_ID, "bot-token", gateway=True),
        policy(f'["discord:{ALICE}"]'),
        15,
        nested,
    )
    await asyncio.wait_for(discord_api.posted.wait(), 10)
    modal = await discord_api.click(discord_api.messages[-1], "Edit", ALICE)
    (field,) = modal["data"]["components"][0]["components"]
    shown = json.loads(field["value"])
    assert shown == {"wire": {"amount": 5000, "api_key": "[REDACTED]"}}
    shown["wire"]["amount"] = 50
    submit = modal_submit(modal["data"]["custom_id"], "params", json.dumps(shown))
    reply = await discord_api.push(5, submit, ALICE)
    assert "approved with edits" in reply["data"]["content"], reply
    result = await run.result()
    assert result.ok and run.executor.ran[0].params == {
        "wire": {"amount": 50, "api_key": "sk-live-abcdefghijklmnop1234"}
    }


async def test_edit_then_approve_runs_the_edited_action(
    store: AuditStore, discord_api: Discord
) -> None:
    run, message = await start(store, discord_api, policy(f'["discord:{ALICE}"]'))
    modal = await discord_api.click(message, "Edit", ALICE)
    assert modal["type"] == 9
    (field,) = modal["data"]["components"][0]["components"]
    shown = json.loads(field["value"])
    assert shown == {"amount": 5000, "api_key": "[REDACTED]"}  # the secret never leaves home
    shown["amount"] = 50
    submit = modal_submit(modal["data"]["custom_id"], "params", json.dumps(shown))
    reply = await discord_api.push(5, submit, ALICE)
    assert "approved with edits" in reply["data"]["content"]
    result = await run.result()
    assert result.ok and run.executor.ran[0].params == {
        "amount": 50,
        "api_key": "sk-live-abcdefghijklmnop1234",
    }


async def test_no_answer_expires_and_the_message_says_so(
    store: AuditStore, discord_api: Discord
) -> None:
    run, _ = await start(store, discord_api, timeout=1)
    result = await run.result()
    assert run.executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.approval is not None and result.approval.timed_out
    assert "EXPIRED** — expired: no answer within 1 s" in (await edited(discord_api))["content"]


async def test_an_unauthorised_click_is_refused_and_audited(
    store: AuditStore, discord_api: Discord
) -> None:
    run, message = await start(store, discord_api, timeout=2)
    reply = await discord_api.click(message, "Approve", EVE)
    assert f"refused: discord:{EVE} may not answer" in reply["data"]["content"]
    result = await run.result()
    assert run.executor.ran == [] and result.status is ResultStatus.DENIED
    (req,) = store.approvals.list(limit=None)
    assert [(a.responder, a.accepted) for a in req.answers] == [(f"discord:{EVE}", False)]


async def test_a_forged_custom_id_names_no_request(store: AuditStore, discord_api: Discord) -> None:
    run, message = await start(store, discord_api, timeout=2)
    real = button(message, "Approve")
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    reply = await discord_api.push(3, {"custom_id": forged, "component_type": 2}, ALICE)
    assert "refused" in reply["data"]["content"] or "does not match" in reply["data"]["content"]
    result = await run.result()
    assert run.executor.ran == [] and result.status is ResultStatus.DENIED
    (req,) = store.approvals.list(limit=None)
    assert req.answers == ()  # the forged ref resolved to no request at all


async def test_quorum_of_two_across_two_users(store: AuditStore, discord_api: Discord) -> None:
    pol = policy(f'{{allow: ["discord:{ALICE}", "discord:{BOB}"], quorum: 2}}')
    run, message = await start(store, discord_api, pol)
    first = await discord_api.click(message, "Approve", ALICE)
    assert "approval 1 of 2" in first["data"]["content"]
    again = await discord_api.click(message, "Approve", ALICE)
    assert "already answered" in again["data"]["content"]
    await discord_api.click(message, "Approve", BOB)
    result = await run.result()
    assert result.ok and len(run.executor.ran) == 1
    assert result.approval is not None
    assert result.approval.approvers == (f"discord:{ALICE}", f"discord:{BOB}")


async def test_429_is_waited_out_then_the_message_goes(
    store: AuditStore, discord_api: Discord
) -> None:
    answers = iter(
        [
            web.Response(
                status=429,
                body=json.dumps(
                    {"message": "You are being rate limited.", "retry_after": 0.4, "global": False}
                ).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Retry-After": "1",
                    "X-RateLimit-Scope": "user",
                },
            )
        ]
    )
    discord_api.fail = lambda: next(answers, None)
    run, message = await start(store, discord_api)
    assert discord_api.post_attempts == 2
    await discord_api.click(message, "Approve", ALICE)
    assert (await run.result()).ok


async def test_a_discord_that_stays_down_means_denied(
    store: AuditStore, discord_api: Discord
) -> None:
    discord_api.fail = lambda: web.Response(status=503, text="upstream down")
    run = run_with(store, policy(), 2, gateway=False)
    result = await run.result()
    assert run.executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.approval is not None and result.approval.timed_out
    assert discord_api.post_attempts >= 2 and discord_api.messages == []


# -- the HTTP interactions endpoint ---------------------------------------------------------


def signed(payload: dict[str, Any], *, key: Ed25519PrivateKey = KEY, at: int | None = None) -> Any:
    body = json.dumps(payload).encode()
    ts = str(int(time.time()) if at is None else at)
    headers = {
        "X-Signature-Ed25519": key.sign(ts.encode() + body).hex(),
        "X-Signature-Timestamp": ts,
        "Content-Type": "application/json",
    }
    return headers, body


async def post(store: AuditStore, headers: dict[str, str], body: bytes) -> HttpResponse:
    request = HttpRequest("POST", INTERACTIONS_PATH, headers, {}, body, context=RouteContext(store))
    return await interactions(request)


def in_guild(api: Discord, kind: int, data: dict[str, Any], user: str) -> dict[str, Any]:
    payload = api.interaction(kind, data, user)
    member_user = payload.pop("user")
    return {
        **payload,
        "guild_id": "1500000000000000001",
        "member": {
            "user": member_user,
            "roles": [],
            "joined_at": "2026-01-01T00:00:00Z",
            "deaf": False,
            "mute": False,
        },
    }


async def test_http_ping_is_answered_and_bad_signatures_get_401(
    store: AuditStore, discord_api: Discord
) -> None:
    ping = {"id": "1", "application_id": "2", "type": 1, "token": "t", "version": 1}
    ok = await post(store, *signed(ping))
    assert ok.status == 200 and json.loads(ok.body) == {"type": 1}
    headers, body = signed(ping)
    assert (await post(store, headers, body + b" ")).status == 401  # body changed after signing
    assert (await post(store, *signed(ping, key=Ed25519PrivateKey.generate()))).status == 401
    stale = await post(store, *signed(ping, at=int(time.time()) - 3600))
    assert stale.status == 401 and b"stale" in stale.body
    assert (await post(store, {}, body)).status == 401


async def test_http_click_approves_once_and_a_replay_is_refused(
    store: AuditStore, discord_api: Discord
) -> None:
    run, message = await start(store, discord_api, gateway=False)
    click = in_guild(
        discord_api, 3, {"custom_id": button(message, "Approve"), "component_type": 2}, ALICE
    )
    headers, body = signed(click)
    response = await post(store, headers, body)
    assert response.status == 200, response.body
    data = json.loads(response.body)
    assert data["type"] == 4 and f"approved by discord:{ALICE}" in data["data"]["content"]
    assert (await post(store, headers, body)).status == 409  # the same signed request again
    result = await run.result()
    assert result.ok and len(run.executor.ran) == 1
    assert "APPROVED" in (await edited(discord_api))["content"]
    (req,) = store.approvals.list(limit=None)
    assert req.answers[0].note and "approved" in req.answers[0].note


async def test_http_deny_modal_and_unauthorised_member(
    store: AuditStore, discord_api: Discord
) -> None:
    run, message = await start(store, discord_api, gateway=False)
    eve = in_guild(
        discord_api, 3, {"custom_id": button(message, "Approve"), "component_type": 2}, EVE
    )
    refused = json.loads((await post(store, *signed(eve))).body)
    assert "may not answer" in refused["data"]["content"]
    deny = in_guild(
        discord_api, 3, {"custom_id": button(message, "Deny"), "component_type": 2}, BOB
    )
    modal = json.loads((await post(store, *signed(deny))).body)
    assert modal["type"] == 9
    submit = in_guild(
        discord_api, 5, modal_submit(modal["data"]["custom_id"], "reason", "not today"), BOB
    )
    reply = json.loads((await post(store, *signed(submit))).body)
    assert f"denied by discord:{BOB}: not today" in reply["data"]["content"]
    result = await run.result()
    assert run.executor.ran == [] and result.reason == "denied: not today"
    (req,) = store.approvals.list(limit=None)
    assert [(a.responder, a.accepted) for a in req.answers] == [
        (f"discord:{EVE}", False),
        (f"discord:{BOB}", True),
    ]


def test_the_channel_and_route_are_registered() -> None:
    from aegis import plugins

    registry = plugins.get_registry()
    assert registry.get("approval_handlers", "discord") is not None
    assert registry.get("routes", INTERACTIONS_PATH) is not None


async def test_escalation_posts_again_and_every_message_is_updated(
    store: AuditStore, discord_api: Discord
) -> None:
    pol = policy(
        f'{{allow: ["discord:{ALICE}"], escalate_after: 1s, escalate_to: ["discord:{BOB}"]}}'
    )
    run, first = await start(store, discord_api, pol)
    early = await discord_api.click(first, "Approve", BOB)
    assert "may not answer" in early["data"]["content"]  # not before the escalation
    for _ in range(100):
        if len(discord_api.messages) == 2:
            break
        await asyncio.sleep(0.05)
    second = discord_api.messages[1]
    await discord_api.click(second, "Approve", BOB)
    result = await run.result()
    assert result.ok and len(run.executor.ran) == 1
    for _ in range(100):
        if len(discord_api.edits) == 2:
            break
        await asyncio.sleep(0.05)
    assert sorted(e["id"] for e in discord_api.edits) == sorted([first["id"], second["id"]])
    assert all("APPROVED" in e["content"] for e in discord_api.edits)


async def test_a_network_that_is_down_means_denied(
    store: AuditStore, discord_api: Discord, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import discord.http

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    run = run_with(store, policy(), 1.5, gateway=False)
    result = await run.result()
    assert run.executor.ran == [] and result.approval is not None and result.approval.timed_out
    assert discord_api.messages == []
