"""Approve / deny links against a real SMTP server (aiosmtpd): mail out, confirmation page, POST."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from aegis.approvals.email import ROUTE, _clean, make_link, read_link
from email_helpers import SECRET, Inbox, channel, links, policy, start, text_of, until, visit

from aegis.core.result import ResultStatus
from aegis.runtime.audit import AuditStore

ALICE, BOB, EVE = "alice@example.com", "bob@example.com", "eve@example.com"


async def test_approve_by_link_runs_and_a_get_never_answers(store: AuditStore, smtp: Inbox) -> None:
    task, executor = start(store, channel(smtp, [ALICE]), policy(f'["email:{ALICE}"]'))
    await until(lambda: smtp.mails)
    (mail,) = smtp.mails
    text = text_of(mail)
    assert mail["To"] == ALICE and mail["From"] == "aegis@example.com"
    assert "pay -> bank" in mail["Subject"]
    for shown in ("[REDACTED]", "risk high", "rule big_payment", "billing-bot", "sess-42"):
        assert shown in text
    assert f"may answer: email:{ALICE}" in text and "expires 20" in text
    assert "sk-live" not in mail.as_string()
    link = links(mail)["approve"]
    for _ in range(2):  # a mail scanner prefetching the link decides nothing
        page = await visit(store, link)
        assert page.status == 200 and b'<form method="post">' in page.body
    (req,) = store.approvals.list(limit=None)
    assert req.state == "pending" and req.answers == ()
    answered = await visit(store, link, "POST", {"reason": "looks right"})
    assert answered.status == 200, answered.body
    result = await task
    assert result.ok and len(executor.ran) == 1
    assert executor.ran[0].params["api_key"] == "sk-live-abcdefghijklmnop1234"
    (rec,) = store.query(limit=None)
    assert rec.approver == f"email:{ALICE}"
    await until(lambda: len(smtp.mails) == 2)  # the follow-up, threaded on the request mail
    follow = smtp.mails[1]
    assert (
        follow["Subject"].startswith("[approved]") and follow["In-Reply-To"] == mail["Message-ID"]
    )
    assert f"approved by email:{ALICE}" in text_of(follow)
    page = await visit(store, link)
    assert page.status == 409 and b"Already approved" in page.body


async def test_deny_with_a_reason_is_not_run_and_says_why(store: AuditStore, smtp: Inbox) -> None:
    task, executor = start(store, channel(smtp, [ALICE]), policy())
    await until(lambda: smtp.mails)
    answered = await visit(store, links(smtp.mails[0])["deny"], "POST", {"reason": "wrong account"})
    assert answered.status == 200
    result = await task
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.reason == "denied: wrong account"
    await until(lambda: len(smtp.mails) == 2)
    body = text_of(smtp.mails[1])
    assert body.startswith(f"denied by email:{ALICE}: wrong account")


async def test_edited_params_are_re_evaluated_and_redacted_values_stay_real(
    store: AuditStore, smtp: Inbox
) -> None:
    task, executor = start(store, channel(smtp, [ALICE]), policy())
    await until(lambda: smtp.mails)
    link = links(smtp.mails[0])["approve"]
    page = await visit(store, link)
    assert b'name="params"' in page.body and b"[REDACTED]" in page.body
    for bad_form in (
        {"params": "{not json"},
        {"params": "[" * 20000},
        {"params": '{"amount": 1}'},  # api_key removed: edits only set values
        {f"f{i}": "x" for i in range(20)},
    ):
        bad = await visit(store, link, "POST", bad_form)
        assert bad.status == 400, bad_form
    assert store.approvals.list(limit=None)[0].answers == ()
    edited = json.dumps({"amount": 900, "api_key": "[REDACTED]"})  # the key left as shown
    answered = await visit(store, link, "POST", {"params": edited})
    assert answered.status == 200, answered.body
    result = await task
    assert result.ok and executor.ran[0].params == {
        "amount": 900,
        "api_key": "sk-live-abcdefghijklmnop1234",
    }
    # re-evaluated: 900 no longer matches the approval rule, so the defaults (auto, low) apply
    assert result.decision is not None and result.decision.matched_rule is None


async def test_an_edit_the_policy_blocks_does_not_run(store: AuditStore, smtp: Inbox) -> None:
    blocks = """
  - name: no_huge
    match: {type: pay}
    conditions: {param_gt: {amount: 100000}}
    approval: block"""
    task, executor = start(store, channel(smtp, [ALICE]), policy(extra_rules=blocks))
    await until(lambda: smtp.mails)
    edited = json.dumps({"amount": 10**6, "api_key": "[REDACTED]"})
    await visit(store, links(smtp.mails[0])["approve"], "POST", {"params": edited})
    result = await task
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED


async def test_no_answer_expires_and_the_follow_up_says_so(store: AuditStore, smtp: Inbox) -> None:
    task, executor = start(store, channel(smtp, [ALICE]), policy(), approval_timeout=0.5)
    result = await task
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.approval is not None and result.approval.timed_out
    await until(lambda: len(smtp.mails) == 2)
    assert smtp.mails[1]["Subject"].startswith("[expired]")
    assert text_of(smtp.mails[1]).startswith("expired")


def _resign(link: str, change: int, value: object) -> str:
    """The link's payload with one field changed, keeping the original MAC."""
    body, _, mac = link.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload[change] = value
    new = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{new}.{mac}"


async def test_tampered_foreign_stale_and_replayed_links_are_rejected(
    store: AuditStore, smtp: Inbox
) -> None:
    task, executor = start(
        store, channel(smtp, [ALICE, EVE]), policy(f'["email:{ALICE}"]'), approval_timeout=5
    )
    await until(lambda: len(smtp.mails) == 2)
    good = links(smtp.to(ALICE)[0])["approve"]
    token = read_link(SECRET.encode(), good)[0].token  # type: ignore[union-attr]
    expires = time.time() + 60
    tampered = {
        "recipient swapped": _resign(good, 2, BOB),
        "deny link turned approve": _resign(links(smtp.to(ALICE)[0])["deny"], 3, "approve"),
        "mac altered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "another secret": make_link(b"x" * 32, token, ALICE, "approve", expires),
        "no mac": good.partition(".")[0],
    }
    for why, link in tampered.items():
        for method in ("GET", "POST"):
            page = await visit(store, link, method)
            assert page.status == 403, why
    stale = make_link(SECRET.encode(), token, ALICE, "approve", time.time() - 1)
    assert (await visit(store, stale, "POST")).status == 410
    wrong_request = make_link(SECRET.encode(), "0" * 32 + "." + "0" * 32, ALICE, "approve", expires)
    assert (await visit(store, wrong_request, "POST")).status == 404
    # eve was mailed too, but the rule lets only alice answer: refused, and stored
    eve = await visit(store, links(smtp.to(EVE)[0])["approve"], "POST")
    assert eve.status == 409 and b"may not answer" in eve.body
    assert (await visit(store, good, "POST")).status == 200
    result = await task
    assert result.ok and len(executor.ran) == 1
    replay = await visit(store, good, "POST")
    assert replay.status == 409 and b"already approved" in replay.body
    (req,) = store.approvals.list(limit=None)
    assert [(a.responder, a.accepted) for a in req.answers] == [
        (f"email:{EVE}", False),
        (f"email:{ALICE}", True),
        (f"email:{ALICE}", False),
    ]


async def test_quorum_of_two_across_two_recipients(store: AuditStore, smtp: Inbox) -> None:
    task, executor = start(
        store, channel(smtp, [ALICE, BOB]), policy('{allow: ["email:*@example.com"], quorum: 2}')
    )
    await until(lambda: len(smtp.mails) == 2)
    alice = links(smtp.to(ALICE)[0])["approve"]
    page = await visit(store, alice)
    assert b'name="params"' not in page.body  # edits need a single approver
    assert (await visit(store, alice, "POST")).status == 200
    again = await visit(store, alice, "POST")
    assert again.status == 409 and b"already answered" in again.body
    await asyncio.sleep(0.2)
    assert not task.done() and executor.ran == []
    assert (await visit(store, links(smtp.to(BOB)[0])["approve"], "POST")).status == 200
    result = await task
    assert result.ok and len(executor.ran) == 1
    assert result.approval is not None and set(result.approval.approvers) == {
        f"email:{ALICE}",
        f"email:{BOB}",
    }


async def test_recipients_come_from_the_rule_too(store: AuditStore, smtp: Inbox) -> None:
    rule = f'["email:{BOB}", "email:*@example.com", "slack:U1"]'
    task, _ = start(store, channel(smtp, []), policy(rule))
    await until(lambda: smtp.mails)
    (mail,) = smtp.mails
    assert mail["To"] == BOB and smtp.rcpts == [[BOB]]
    await visit(store, links(mail)["deny"], "POST")
    await task


def test_subjects_are_one_line_whatever_a_name_holds() -> None:
    # The core already refuses control characters in action names; this is the second wall.
    assert _clean("pay -> bank\r\nBcc: eve@example.com\u2028x") == (
        "pay -> bank Bcc: eve@example.com x"
    )
    assert len(_clean("x" * 500)) == 150


def test_the_channel_and_its_route_are_registered() -> None:
    from aegis import plugins

    registry = plugins.get_registry()
    assert registry.get("approval_handlers", "email") is not None
    assert registry.get("routes", ROUTE) is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sender": ""}, "AEGIS_EMAIL_FROM"),
        ({"link_secret": "short"}, "at least 16 bytes"),
        ({"base_url": ""}, "both AEGIS_EMAIL_BASE_URL and a secret"),
        ({"smtp_url": "http://x"}, "scheme"),
    ],
)
def test_bad_settings_are_one_line_errors(
    smtp: Inbox, kwargs: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aegis.approvals.email import EmailChannel

    monkeypatch.delenv("AEGIS_EMAIL_BASE_URL", raising=False)
    base = {
        "smtp_url": f"smtp://127.0.0.1:{smtp.port}",
        "sender": "aegis@example.com",
        "link_secret": SECRET,
        "base_url": "https://x",
    }
    with pytest.raises(ValueError, match=message):
        EmailChannel(**{**base, **kwargs})  # type: ignore[arg-type]


async def test_escalation_mails_the_escalate_to_addresses_who_may_then_answer(
    store: AuditStore, smtp: Inbox
) -> None:
    terms = f'{{allow: ["email:{ALICE}"], escalate_after: 300ms, escalate_to: ["email:{BOB}"]}}'
    task, executor = start(store, channel(smtp, []), policy(terms))
    await until(lambda: smtp.to(BOB))
    assert len(smtp.to(ALICE)) == 1  # alice is not mailed twice
    assert (await visit(store, links(smtp.to(BOB)[0])["approve"], "POST")).status == 200
    result = await task
    assert result.ok and len(executor.ran) == 1
