"""The Slack channel with the real slack-sdk clients (AsyncWebClient, Socket Mode over aiohttp)
against a stand-in Slack on 127.0.0.1: clicks, modals, thread replies, signed callbacks, outages."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aegis.approvals.slack import INTERACTIVITY_PATH, Interactivity
from aegis.approvals.slack_blocks import APPROVE, DENY, EDIT, parse_command
from aiohttp import web
from slack_flow import PAY, policy
from slack_standin import (
    APP_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    block_actions,
    signed_form,
    thread_reply,
    view_submission,
)

from aegis import Action, plugins
from aegis.core.result import ResultStatus
from aegis.http import HttpRequest, HttpResponse, RouteContext
from aegis.runtime.audit import AuditStore

ALICE, BOB, MALLORY = "U0ALICE", "U0BOB", "U0MALLORY"


async def click(
    slack: FakeSlack, message: dict[str, Any], action_id: str, user: str, ts: str
) -> Any:
    return await slack.envelope(
        "interactive", block_actions(user, slack.button(message, action_id), ts)
    )


async def updated(slack: FakeSlack) -> dict[str, Any]:
    (update,) = await slack.wait_for("chat.update")
    return update


def route() -> Any:
    registration = plugins.get_registry().get("routes", INTERACTIVITY_PATH)
    assert registration is not None
    return registration.obj


async def post(store: AuditStore, body: bytes, headers: dict[str, str]) -> HttpResponse:
    request = HttpRequest(
        "POST", INTERACTIVITY_PATH, headers, {}, body, context=RouteContext(store)
    )
    response: HttpResponse = await route()(request)
    return response


# --- Socket Mode: buttons and modals ----------------------------------------------------------


async def test_approve_click_runs_the_action_and_the_message_says_who(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy())
    message, ts = await f.message(), await f.ts()
    (request,) = store.approvals.list(limit=None)
    button = slack.button(message, APPROVE)
    assert button["value"] == store.approvals.token(request) and button["value"] != request.id
    shown = json.dumps(message["blocks"])
    assert "sk-live" not in shown and "[REDACTED]" in shown and "big_payment" in shown
    assert "high" in shown and "<!date^" in shown  # risk, and when it expires

    ack = await click(slack, message, APPROVE, ALICE, ts)
    assert "payload" not in ack  # a plain ack
    result = await f.result()
    assert result.ok and len(f.executor.ran) == 1
    assert f.executor.ran[0].params["api_key"] == PAY.params["api_key"]
    (rec,) = store.query(limit=None)
    assert rec.approver == "slack:U0ALICE"
    update = await updated(slack)
    assert update["ts"] == ts and "*approved* by <@U0ALICE>" in json.dumps(update["blocks"])
    assert all(b["type"] != "actions" for b in update["blocks"])  # no buttons left
    notes = slack.called("chat.postEphemeral")
    assert notes and notes[0]["user"] == ALICE and "approved" in notes[0]["text"]


async def test_deny_with_a_reason_through_the_modal(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy())
    message, ts = await f.message(), await f.ts()
    await click(slack, message, DENY, BOB, ts)
    (opened,) = await slack.wait_for("views.open")
    assert opened["trigger_id"] and opened["view"]["callback_id"] == DENY
    ack = await slack.envelope(
        "interactive", view_submission(BOB, opened["view"], {"reason": "wrong account"})
    )
    assert ack.get("payload") is None  # the modal closes
    result = await f.result()
    assert f.executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.reason == "denied: wrong account"
    update = await updated(slack)
    assert "*denied* by <@U0BOB>: wrong account" in json.dumps(update["blocks"])


@pytest.mark.parametrize(
    ("typed", "status", "amount"),
    [("10", ResultStatus.SUCCESS, 10), ("5000000", ResultStatus.BLOCKED, None)],
    ids=["edited-down-runs", "edited-up-is-blocked"],
)
async def test_an_edit_through_the_modal_is_evaluated_again(
    store: AuditStore, slack: FakeSlack, flow: Any, typed: str, status: Any, amount: Any
) -> None:
    f = flow(policy())
    message, ts = await f.message(), await f.ts()
    await click(slack, message, EDIT, ALICE, ts)
    (opened,) = await slack.wait_for("views.open")
    view = opened["view"]
    inputs = [b["block_id"] for b in view["blocks"] if b["type"] == "input"]
    assert inputs == ["param:amount", "reason"]  # the redacted api_key is not offered
    bad = await slack.envelope("interactive", view_submission(ALICE, view, {"param:amount": "ten"}))
    assert bad["payload"]["response_action"] == "errors"
    assert "param:amount" in bad["payload"]["errors"]
    assert store.approvals.list(limit=None)[0].answers == ()  # nothing was reported
    await slack.envelope("interactive", view_submission(ALICE, view, {"param:amount": typed}))
    result = await f.result()
    assert result.status is status
    if amount is None:
        assert f.executor.ran == []
    else:
        (ran,) = f.executor.ran
        assert ran.params == {"amount": amount, "api_key": PAY.params["api_key"]}


async def test_no_answer_expires_and_the_message_is_updated(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    sneaky = Action("pay", "acct <!channel> <https://evil.example|bank>", params={"amount": 5000})
    f = flow(policy(), timeout=1.0, action=sneaky)
    message = await f.message()
    assert "<!channel>" not in json.dumps(message["blocks"])  # target text cannot ping or link
    assert "&lt;!channel&gt;" in json.dumps(message["blocks"])
    assert "<!channel>" not in message["text"]  # nor the notification text
    result = await f.result()
    assert result.status is ResultStatus.DENIED and result.approval.timed_out
    update = await updated(slack)
    assert "*expired*" in json.dumps(update["blocks"])


async def test_an_unauthorised_click_is_ignored_and_audited(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy('["slack:U0ALICE"]'))
    message, ts = await f.message(), await f.ts()
    await click(slack, message, APPROVE, MALLORY, ts)
    (note,) = await slack.wait_for("chat.postEphemeral")
    assert note["user"] == MALLORY and note["text"].startswith("refused")
    assert not f.task.done()
    await click(slack, message, APPROVE, ALICE, ts)
    result = await f.result()
    assert result.ok and len(f.executor.ran) == 1
    assert f.answers() == [("slack:U0MALLORY", False), ("slack:U0ALICE", True)]


async def test_quorum_of_two_across_two_users(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy('{allow: ["slack:*"], quorum: 2}'))
    message, ts = await f.message(), await f.ts()
    assert not any(b["action_id"] == EDIT for b in message["blocks"][-2]["elements"])
    await click(slack, message, APPROVE, ALICE, ts)
    await click(slack, message, APPROVE, ALICE, ts)  # the same person twice is one approver
    await slack.wait_for("chat.postEphemeral", 2)
    assert not f.task.done()
    await click(slack, message, APPROVE, BOB, ts)
    result = await f.result()
    assert result.ok and len(f.executor.ran) == 1
    assert f.answers() == [
        ("slack:U0ALICE", True),
        ("slack:U0ALICE", False),
        ("slack:U0BOB", True),
    ]
    update = await updated(slack)
    assert "<@U0ALICE>, <@U0BOB>" in json.dumps(update["blocks"])


async def test_a_click_after_settlement_is_refused_and_recorded(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy())
    message, ts = await f.message(), await f.ts()
    await click(slack, message, APPROVE, ALICE, ts)
    assert (await f.result()).ok
    await updated(slack)
    await click(slack, message, DENY, BOB, ts)  # a stale message: no modal for a closed request
    await click(slack, message, APPROVE, BOB, ts)
    await slack.wait_for("chat.postEphemeral", 3)
    assert slack.called("views.open") == []
    assert f.answers() == [("slack:U0ALICE", True), ("slack:U0BOB", False)]
    assert len(f.executor.ran) == 1


# --- thread replies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("approve", ("approve", None)),
        ("  Approve \n", ("approve", None)),
        ("deny", ("deny", None)),
        ("deny  wrong account ", ("deny", "wrong account")),
        ("I disapprove", None),
        ("approved", None),
        ("please approve", None),
        ("approve it", None),
        ("don't approve", None),
        ("*approve*", None),
        ("denying", None),
        ("", None),
    ],
)
def test_only_the_exact_command_is_a_command(text: str, expected: Any) -> None:
    assert parse_command(text) == expected


async def test_thread_replies_count_only_as_exact_commands_from_people(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy('["slack:U0ALICE"]'))
    ts = await f.ts()
    noise = [
        thread_reply(ALICE, "I disapprove", ts),
        thread_reply(ALICE, "approved", ts),
        thread_reply(ALICE, "please approve this", ts),
        thread_reply("U0BOTUSER", "approve", ts, bot_id="B0OTHER"),  # a bot
        thread_reply(ALICE, "approve", ts, subtype="message_changed"),  # an edit
        thread_reply(ALICE, "approve", "1234.000001"),  # some other thread
        thread_reply(ALICE, "approve", ts, channel="C0ELSEWHERE"),
    ]
    for event in noise:
        await slack.envelope("events_api", event)
    await asyncio.sleep(0.3)
    assert not f.task.done() and store.approvals.list(limit=None)[0].answers == ()
    await slack.envelope("events_api", thread_reply(ALICE, "approve", ts))
    result = await f.result()
    assert result.ok and f.answers() == [("slack:U0ALICE", True)]
    (rec,) = store.query(limit=None)
    assert rec.approver == "slack:U0ALICE"


async def test_a_thread_deny_carries_its_reason(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy())
    ts = await f.ts()
    await slack.envelope("events_api", thread_reply(BOB, "deny not this quarter", ts))
    result = await f.result()
    assert result.status is ResultStatus.DENIED and result.reason == "denied: not this quarter"
    assert f.executor.ran == []
    (note,) = await slack.wait_for("chat.postEphemeral")
    assert note["thread_ts"] == ts


# --- the interactivity route (no Socket Mode) ---------------------------------------------------


async def test_a_signed_callback_approves_and_its_replay_is_refused(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy(), socket=False)
    message, ts = await f.message(), await f.ts()
    body, headers = signed_form(block_actions(ALICE, slack.button(message, APPROVE), ts))
    response = await post(store, body, headers)
    assert response.status == 200
    result = await f.result()
    assert result.ok and len(f.executor.ran) == 1
    replay = await post(store, body, headers)
    assert replay.status == 401 and b"replayed" in replay.body
    assert f.answers() == [("slack:U0ALICE", True)]
    assert slack.sockets == []  # no app token: no Socket Mode connection


@pytest.mark.parametrize(
    "forge",
    [
        "wrong-secret",
        "stale",
        "future",
        "unsigned",
        "tampered",
        "bad-timestamp",
        "superscript-timestamp",
        "v1-scheme",
    ],
)
async def test_forged_or_stale_callbacks_are_rejected_before_parsing(
    store: AuditStore, slack: FakeSlack, flow: Any, forge: str
) -> None:
    f = flow(policy(), socket=False, timeout=1.5)
    message, ts = await f.message(), await f.ts()
    payload = block_actions(ALICE, slack.button(message, APPROVE), ts)
    now = int(time.time())
    body, headers = {
        "wrong-secret": lambda: signed_form(payload, secret="0" * 32),
        "stale": lambda: signed_form(payload, at=now - 301),
        "future": lambda: signed_form(payload, at=now + 400),
        "unsigned": lambda: (signed_form(payload)[0], {}),
        "tampered": lambda: signed_form(payload),
        "bad-timestamp": lambda: signed_form(payload),
        "superscript-timestamp": lambda: signed_form(payload),
        "v1-scheme": lambda: signed_form(payload),
    }[forge]()
    if forge == "tampered":
        body = body.replace(b"U0ALICE", b"U0MALLO")
    if forge == "bad-timestamp":
        headers["X-Slack-Request-Timestamp"] = "1e9"
    if forge == "superscript-timestamp":
        headers["X-Slack-Request-Timestamp"] = "\u00b9\u2077"
    if forge == "v1-scheme":
        headers["X-Slack-Signature"] = headers["X-Slack-Signature"].replace("v0=", "v1=")
    response = await post(store, body, headers)
    assert response.status == 401
    result = await f.result()
    assert result.status is ResultStatus.DENIED and result.approval.timed_out
    assert f.answers() == []  # nothing reached the core


async def test_a_signed_callback_naming_the_bare_id_is_not_an_answer(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy(), socket=False, timeout=1.5)
    message, ts = await f.message(), await f.ts()
    (request,) = store.approvals.list(limit=None)
    button = {**slack.button(message, APPROVE), "value": request.id}
    body, headers = signed_form(block_actions(ALICE, button, ts))
    assert (await post(store, body, headers)).status == 200  # Slack gets its ack
    result = await f.result()
    assert result.status is ResultStatus.DENIED and f.executor.ran == []
    assert f.answers() == []


async def test_the_signature_window_is_five_minutes(store: AuditStore) -> None:
    class At:
        def __init__(self, t: float) -> None:
            self.t = t

        def now(self) -> float:
            return self.t

    body, headers = signed_form({"type": "block_actions"}, at=1_700_000_000)
    request = HttpRequest("POST", INTERACTIVITY_PATH, headers, {}, body)
    Interactivity.seen.clear()
    assert Interactivity(SIGNING_SECRET, clock=At(1_700_000_299)).check(request) == ""
    Interactivity.seen.clear()
    assert Interactivity(SIGNING_SECRET, clock=At(1_700_000_301)).check(request) == (
        "stale timestamp"
    )
    assert Interactivity(SIGNING_SECRET, clock=At(1_699_999_701)).check(request) == ""
    assert Interactivity(SIGNING_SECRET, clock=At(1_699_999_702)).check(request) == (
        "replayed callback"
    )


async def test_edit_through_the_route_opens_the_modal_and_approves_the_edit(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    f = flow(policy(), socket=False)
    message, ts = await f.message(), await f.ts()
    body, headers = signed_form(block_actions(ALICE, slack.button(message, EDIT), ts))
    assert (await post(store, body, headers)).status == 200
    (opened,) = await slack.wait_for("views.open")
    submission = view_submission(ALICE, opened["view"], {"param:amount": "20"})
    body, headers = signed_form(submission)
    assert (await post(store, body, headers)).status == 200
    result = await f.result()
    assert result.ok and f.executor.ran[0].params["amount"] == 20


async def test_the_route_refuses_without_a_signing_secret(
    store: AuditStore, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    body, headers = signed_form({"type": "block_actions"})
    response = await post(store, body, headers)
    assert response.status == 503


# --- platform errors ---------------------------------------------------------------------------


async def test_slack_that_stays_down_means_denied(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    slack.fault = lambda method, args: web.json_response(
        {"ok": False, "error": "service_unavailable"}, status=503
    )
    f = flow(policy(), timeout=2.0)
    result = await f.result()
    assert result.status is ResultStatus.DENIED and result.approval.timed_out
    assert f.executor.ran == [] and len(slack.posted()) >= 2  # it retried


async def test_a_network_that_is_down_means_denied(store: AuditStore, flow: Any) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/api/"
    f = flow(policy(), timeout=1.5, base_url=dead)
    result = await f.result()
    assert result.status is ResultStatus.DENIED and result.approval.timed_out
    assert f.executor.ran == []


async def test_429_retry_after_is_honoured_then_the_click_counts(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    seen: list[float] = []

    def limited(method: str, args: dict[str, Any]) -> web.Response | None:
        if method != "chat.postMessage":
            return None
        seen.append(time.monotonic())
        if len(seen) > 1:
            return None
        return web.json_response(
            {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
        )

    slack.fault = limited
    f = flow(policy())
    await slack.wait_for("chat.postMessage", 2)
    message, ts = await f.message(), await f.ts()
    assert seen[1] - seen[0] >= 0.9
    await click(slack, message, APPROVE, ALICE, ts)
    assert (await f.result()).ok


async def test_a_refusal_from_slack_is_not_retried(
    store: AuditStore, slack: FakeSlack, flow: Any
) -> None:
    slack.fault = lambda method, args: (
        web.json_response({"ok": False, "error": "channel_not_found"})
        if method == "chat.postMessage"
        else None
    )
    f = flow(policy(), timeout=1.5)
    result = await f.result()
    assert result.status is ResultStatus.DENIED and len(slack.posted()) == 1


# --- registration -------------------------------------------------------------------------------


def test_the_channel_and_the_route_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = plugins.get_registry()
    channel = registry.get("approval_handlers", "slack")
    assert channel is not None and registry.get("routes", INTERACTIVITY_PATH) is not None
    monkeypatch.setenv("AEGIS_SLACK_CHANNEL", "C0AEGIS01")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-x")
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    made = channel.obj()
    assert made.channel == "C0AEGIS01" and made.app_token is None
    monkeypatch.delenv("AEGIS_SLACK_CHANNEL")
    with pytest.raises(ValueError, match="AEGIS_SLACK_CHANNEL"):
        channel.obj()


async def test_the_readme_example_runs(
    slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: Any
) -> None:
    from pathlib import Path

    readme = Path(__file__).parents[3] / "aegis-approvals" / "slack" / "README.md"
    code = readme.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    assert code.rstrip().endswith("asyncio.run(main())")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AEGIS_SLACK_CHANNEL", "C0AEGIS01")
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    namespace: dict[str, Any] = {}
    exec(compile(code.rstrip().removesuffix("asyncio.run(main())"), str(readme), "exec"), namespace)
    task = asyncio.ensure_future(namespace["main"]())
    (message,) = await slack.wait_for("chat.postMessage")
    await slack.connected()  # the example's channel opened Socket Mode from the environment
    await click(slack, message, APPROVE, ALICE, "1.000001")
    await asyncio.wait_for(task, 10)
    assert capsys.readouterr().out.startswith("success")
