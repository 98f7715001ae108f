"""The Telegram channel: the real python-telegram-bot client against a local Bot API stand-in,
answers by getUpdates polling and through the secret-checked webhook route."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aegis.approvals.telegram import WEBHOOK_PATH, TelegramChannel, command, pack, unpack, webhook
from aiohttp import web

from aegis import Policy
from aegis.core.result import ResultStatus
from aegis.http import HttpRequest, HttpResponse, RouteContext
from aegis.runtime.audit import AuditStore
from conftest import BOT_ID, CHAT_ID, TOKEN, Telegram
from plugin_helpers import ChannelRun, payment_policy

ALICE, BOB, EVE = 4201, 4202, 6666
SECRET = "webhook-secret-0123456789abcdef"


def policy(approvers: str = f'["telegram:{ALICE}", "telegram:{BOB}"]') -> Policy:
    return payment_policy(approvers)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_TELEGRAM_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("AEGIS_TELEGRAM_TOKEN", TOKEN)


def run_with(
    store: AuditStore, api: Telegram, pol: Policy, timeout: float, polling: bool
) -> ChannelRun:
    channel = TelegramChannel(
        CHAT_ID, TOKEN, base_url=api.base_url, polling=polling, poll_timeout=1
    )
    return ChannelRun(store, channel, pol, timeout)


async def start(
    store: AuditStore,
    api: Telegram,
    pol: Policy | None = None,
    *,
    timeout: float = 15,
    polling: bool = True,
) -> tuple[ChannelRun, dict[str, Any]]:
    run = run_with(store, api, pol or policy(), timeout, polling)
    await asyncio.wait_for(api.posted.wait(), 10)
    return run, api.messages[-1]


async def edited(api: Telegram) -> dict[str, Any]:
    await asyncio.wait_for(api.edited.wait(), 10)
    return api.edits[-1]


async def answered(api: Telegram, count: int) -> list[dict[str, Any]]:
    for _ in range(200):
        if len(api.answers) + len(api.replies) >= count:
            break
        await asyncio.sleep(0.05)
    return [*api.answers, *api.replies]


def test_refs_fit_callback_data_and_commands_are_exact() -> None:
    token = "0123456789abcdef0123456789abcdef.fedcba9876543210fedcba9876543210"
    assert unpack(pack(token)) == token and len(f"a:{pack(token)}".encode()) <= 64
    assert command("deny  wrong account ") == ("deny", "wrong account", None)
    assert command("Approve") == ("approve", None, None)
    assert command('edit {"amount": 10}') == ("approve", None, {"amount": 10})
    assert isinstance(command("I disapprove"), str) and isinstance(command("approved!"), str)
    assert isinstance(command("edit amount=10"), str)
    # A condition after "approve" is not an approval of the action as it stands: it was
    # taken as "approve" with the condition as its reason, and the full amount ran.
    for conditional in ("approve but only 100", "approve if amount < 100", "Approve  later"):
        refused = command(conditional)
        assert isinstance(refused, str) and "edit" in refused, conditional


async def test_a_button_press_approves_and_the_message_says_by_whom(
    store: AuditStore, telegram_api: Telegram
) -> None:
    run, message = await start(store, telegram_api)
    assert "pay -> bank" in message["text"] and "[REDACTED]" in message["text"]
    assert "sk-live" not in message["text"] and "big_payment" in message["text"]
    telegram_api.queue(telegram_api.press(message, "Approve", ALICE))
    result = await run.result()
    assert result.ok and len(run.executor.ran) == 1
    (answer,) = await answered(telegram_api, 1)
    assert f"approved by telegram:{ALICE}" in answer["text"]
    edit = await edited(telegram_api)
    assert edit["text"].startswith(f"APPROVED — approved by telegram:{ALICE}")
    assert "reply_markup" not in edit  # the keyboard is gone
    (rec,) = store.query(limit=None)
    assert rec.approver == f"telegram:{ALICE}"


async def test_a_deny_reply_with_a_reason_reaches_the_result(
    store: AuditStore, telegram_api: Telegram
) -> None:
    run, message = await start(store, telegram_api)
    telegram_api.queue(telegram_api.reply(message, "I disapprove of approving this", BOB))
    telegram_api.queue(telegram_api.reply(message, "deny wrong account", BOB))
    result = await run.result()
    assert run.executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.reason == "denied: wrong account"
    replies = await answered(telegram_api, 2)
    assert "not a command" in replies[0]["text"] and "denied by" in replies[1]["text"]
    assert (await edited(telegram_api))["text"].startswith("DENIED — denied by")
    (req,) = store.approvals.list(limit=None)
    assert len(req.answers) == 1  # the chatter was never reported as an answer


async def test_an_edit_reply_approves_the_edited_action(
    store: AuditStore, telegram_api: Telegram
) -> None:
    run, message = await start(store, telegram_api, policy(f'["telegram:{ALICE}"]'))
    telegram_api.queue(telegram_api.reply(message, 'edit {"amount": 50}', ALICE))
    result = await run.result()
    assert result.ok and run.executor.ran[0].params == {
        "amount": 50,
        "api_key": "sk-live-abcdefghijklmnop1234",
    }


async def test_no_answer_expires_and_the_message_says_so(
    store: AuditStore, telegram_api: Telegram
) -> None:
    run, _ = await start(store, telegram_api, timeout=1)
    result = await run.result()
    assert run.executor.ran == [] and result.approval is not None and result.approval.timed_out
    assert (await edited(telegram_api))["text"].startswith("EXPIRED — expired: no answer within")


async def test_an_unauthorised_press_is_refused_and_audited(
    store: AuditStore, telegram_api: Telegram
) -> None:
    run, message = await start(store, telegram_api, timeout=2)
    telegram_api.queue(telegram_api.press(message, "Approve", EVE))
    result = await run.result()
    assert run.executor.ran == [] and result.status is ResultStatus.DENIED
    (answer,) = await answered(telegram_api, 1)
    assert f"telegram:{EVE} may not answer" in answer["text"] and answer["show_alert"] == "true"
    (req,) = store.approvals.list(limit=None)
    assert [(a.responder, a.accepted) for a in req.answers] == [(f"telegram:{EVE}", False)]


async def test_a_reply_to_someone_elses_message_is_not_an_answer(
    store: AuditStore, telegram_api: Telegram
) -> None:
    run, message = await start(store, telegram_api, timeout=2)
    fake = {**message, "from": {"id": 777, "is_bot": True, "first_name": "Other bot"}}
    telegram_api.queue(telegram_api.reply(fake, "approve", ALICE))
    forged = telegram_api.press(message, "Approve", ALICE)
    forged["callback_query"]["data"] = forged["callback_query"]["data"][:-3] + "AAA"
    telegram_api.queue(forged)
    result = await run.result()
    assert run.executor.ran == [] and result.status is ResultStatus.DENIED
    (answer,) = await answered(telegram_api, 1)
    assert "does not match" in answer["text"] or "no request" in answer["text"]
    (req,) = store.approvals.list(limit=None)
    assert req.answers == ()


async def test_a_forged_press_naming_the_bare_request_id_is_refused(
    store: AuditStore, telegram_api: Telegram
) -> None:
    """A Telegram client may send any callback data for a bot's message: "a:<request id>"
    names the request without its token (the MAC over id and action digest) and was taken
    as an answer, as a button for any request the sender learnt the id of would be."""
    run, message = await start(store, telegram_api, timeout=2)
    (pending,) = store.approvals.list(limit=None)
    forged = telegram_api.press(message, "Approve", ALICE)
    forged["callback_query"]["data"] = "a:" + pending.id
    telegram_api.queue(forged)
    result = await run.result()
    assert run.executor.ran == [] and result.status is ResultStatus.DENIED
    (answer,) = await answered(telegram_api, 1)
    assert "token" in answer["text"] and answer["show_alert"] == "true"
    (req,) = store.approvals.list(limit=None)
    assert [(a.responder, a.accepted) for a in req.answers] == [(f"telegram:{ALICE}", False)]


async def test_quorum_of_two_across_two_users(store: AuditStore, telegram_api: Telegram) -> None:
    pol = policy(f'{{allow: ["telegram:{ALICE}", "telegram:{BOB}"], quorum: 2}}')
    run, message = await start(store, telegram_api, pol)
    telegram_api.queue(telegram_api.press(message, "Approve", ALICE))
    telegram_api.queue(telegram_api.press(message, "Approve", ALICE))
    telegram_api.queue(telegram_api.reply(message, "approve", BOB))
    result = await run.result()
    assert result.ok and len(run.executor.ran) == 1
    assert result.approval is not None
    assert result.approval.approvers == (f"telegram:{ALICE}", f"telegram:{BOB}")
    texts = [a["text"] for a in await answered(telegram_api, 3)]
    assert "approval 1 of 2" in texts[0] and "already answered" in texts[1]


async def test_flood_control_is_waited_out_then_the_message_goes(
    store: AuditStore, telegram_api: Telegram
) -> None:
    flood = web.json_response(
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        },
        status=429,
    )
    answers = iter(
        [
            flood,
            web.json_response(
                {"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502
            ),
        ]
    )
    telegram_api.fail = lambda: next(answers, None)
    run, message = await start(store, telegram_api, polling=True)
    assert telegram_api.send_attempts == 3
    telegram_api.queue(telegram_api.press(message, "Approve", ALICE))
    assert (await run.result()).ok


async def test_a_telegram_that_stays_down_means_denied(
    store: AuditStore, telegram_api: Telegram
) -> None:
    telegram_api.fail = lambda: web.json_response(
        {"ok": False, "error_code": 500, "description": "Internal Server Error"}, status=500
    )
    run = run_with(store, telegram_api, policy(), 2, polling=False)
    result = await run.result()
    assert run.executor.ran == [] and result.approval is not None and result.approval.timed_out
    assert telegram_api.send_attempts >= 2 and telegram_api.messages == []


# -- the webhook route ----------------------------------------------------------------------


async def post(store: AuditStore, update: dict[str, Any], secret: str | None) -> HttpResponse:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    body = json.dumps(update).encode()
    request = HttpRequest("POST", WEBHOOK_PATH, headers, {}, body, context=RouteContext(store))
    return await webhook(request)


async def test_webhook_checks_the_secret_and_answers_in_its_response(
    store: AuditStore, telegram_api: Telegram
) -> None:
    run, message = await start(store, telegram_api, polling=False)
    press = telegram_api.press(message, "Approve", ALICE)
    assert (await post(store, press, None)).status == 403
    assert (await post(store, press, SECRET[:-1] + "x")).status == 403
    eve = await post(store, telegram_api.press(message, "Approve", EVE), SECRET)
    assert "may not answer" in json.loads(eve.body)["text"]
    response = await post(store, press, SECRET)
    assert response.status == 200
    call = json.loads(response.body)
    assert call["method"] == "answerCallbackQuery" and "approved by" in call["text"]
    replay = await post(store, press, SECRET)
    assert json.loads(replay.body) == {"ok": True, "detail": "already handled"}
    fresh_copy = {**press, "update_id": press["update_id"] + 1000}  # a replay with a new id
    again = json.loads((await post(store, fresh_copy, SECRET)).body)
    assert "already approved" in again["text"]
    result = await run.result()
    assert result.ok and len(run.executor.ran) == 1
    assert (await edited(telegram_api))["text"].startswith("APPROVED")
    (req,) = store.approvals.list(limit=None)
    assert [(a.responder, a.accepted) for a in req.answers] == [
        (f"telegram:{EVE}", False),
        (f"telegram:{ALICE}", True),
        (f"telegram:{ALICE}", False),
    ]


async def test_webhook_refuses_malformed_updates_before_reporting(
    store: AuditStore, telegram_api: Telegram
) -> None:
    run, message = await start(store, telegram_api, timeout=1, polling=False)
    press = telegram_api.press(message, "Approve", ALICE)
    del press["callback_query"]["from"]["id"]
    assert (await post(store, press, SECRET)).status == 400
    assert (await post(store, {"no": "update_id"}, SECRET)).status == 400
    request = HttpRequest(
        "POST",
        WEBHOOK_PATH,
        {"X-Telegram-Bot-Api-Secret-Token": SECRET},
        {},
        b"{not json",
        context=RouteContext(store),
    )
    assert (await webhook(request)).status == 400
    result = await run.result()
    assert run.executor.ran == [] and result.approval is not None and result.approval.timed_out
    (req,) = store.approvals.list(limit=None)
    assert req.answers == ()


async def test_webhook_deny_reply(store: AuditStore, telegram_api: Telegram) -> None:
    run, message = await start(store, telegram_api, polling=False)
    response = await post(store, telegram_api.reply(message, "deny not today", BOB), SECRET)
    call = json.loads(response.body)
    assert call["method"] == "sendMessage" and call["chat_id"] == CHAT_ID
    assert f"denied by telegram:{BOB}: not today" in call["text"]
    result = await run.result()
    assert run.executor.ran == [] and result.reason == "denied: not today"


def test_the_channel_and_route_are_registered() -> None:
    from aegis import plugins

    registry = plugins.get_registry()
    assert registry.get("approval_handlers", "telegram") is not None
    assert registry.get("routes", WEBHOOK_PATH) is not None
    assert int(TOKEN.partition(":")[0]) == BOT_ID


async def test_a_network_that_is_down_means_denied(
    store: AuditStore, telegram_api: Telegram
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    telegram_api.base_url = f"http://127.0.0.1:{port}/bot"
    run = run_with(store, telegram_api, policy(), 1.5, polling=True)
    result = await run.result()
    assert run.executor.ran == [] and result.approval is not None and result.approval.timed_out
    assert telegram_api.messages == [] and telegram_api.send_attempts == 0
