"""Answers by reply, read from a real IMAP server (pymap) on 127.0.0.1."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from aegis.approvals.email import EmailChannel
from email_helpers import Imap, Inbox, channel, policy, start, text_of, until

from aegis.core.result import ResultStatus
from aegis.runtime.audit import AuditStore

ALICE, BOB, MALLORY = "alice@example.com", "bob@example.com", "mallory@example.net"


def reply(
    to: EmailMessage, first_line: str, sender: str, *results: str, html_only: bool = False
) -> EmailMessage:
    """A reply as a mail client writes it: threaded on ``to``, the original quoted below."""
    mail = EmailMessage()
    mail["From"], mail["To"] = sender, to["From"]
    mail["Subject"] = "Re: " + to["Subject"]
    mail["Message-ID"] = make_msgid(domain="client.example.com")
    mail["In-Reply-To"] = mail["References"] = to["Message-ID"]
    for header in results:
        mail["Authentication-Results"] = header
    quoted = "\n".join("> " + line for line in text_of(to).splitlines())
    if html_only:
        mail.set_content(f"<p>{first_line}</p>", subtype="html")
    else:
        mail.set_content(f"{first_line}\n\nOn Tuesday, Aegis wrote:\n{quoted}\n")
    return mail


def replying(smtp: Inbox, imap: Imap, to: tuple[str, ...] = (ALICE,), **kw: Any) -> EmailChannel:
    if "authserv_id" not in kw:
        kw.setdefault("trust_from", True)  # the stand-in IMAP server is our own, on loopback
    return channel(smtp, list(to), imap_url=imap.url, poll_interval=0.1, **kw)


def test_replies_without_a_server_to_vouch_for_from_are_refused_when_made(
    smtp: Inbox, imap: Imap, monkeypatch: Any
) -> None:
    """Without ``authserv_id`` nothing required a pass: a reply whose From merely *said*
    alice@example.com, with no Authentication-Results at all, approved the payment. Reading
    replies now needs the server whose checks count, or an explicit ``trust_from``."""
    monkeypatch.delenv("AEGIS_EMAIL_AUTHSERV_ID", raising=False)
    monkeypatch.delenv("AEGIS_EMAIL_TRUST_FROM", raising=False)
    try:
        channel(smtp, [ALICE], imap_url=imap.url)
    except ValueError as exc:
        assert "authserv_id" in str(exc) and "trust_from" in str(exc)
    else:
        raise AssertionError("a channel trusting a bare From header was made")
    monkeypatch.setenv("AEGIS_EMAIL_TRUST_FROM", "1")
    assert channel(smtp, [ALICE], imap_url=imap.url).replies is not None


async def test_an_approve_reply_runs_and_is_marked_seen(
    store: AuditStore, smtp: Inbox, imap: Imap
) -> None:
    task, executor = start(store, replying(smtp, imap), policy(f'["email:{ALICE}"]'))
    await until(lambda: smtp.mails)
    text = text_of(smtp.mails[0])
    assert 'reply with "approve" or "deny <reason>"' in text
    answer = reply(smtp.mails[0], "Approve", "Alice <ALICE@example.com>")
    imap.deliver(answer)
    result = await task
    assert result.ok and len(executor.ran) == 1
    (rec,) = store.query(limit=None)
    assert rec.approver == f"email:{ALICE}"  # spelled as it was addressed
    assert imap.seen(answer["Message-ID"])
    await until(lambda: len(smtp.mails) == 2)
    assert smtp.mails[1]["In-Reply-To"] == smtp.mails[0]["Message-ID"]


async def test_a_deny_reply_carries_its_reason(store: AuditStore, smtp: Inbox, imap: Imap) -> None:
    task, executor = start(store, replying(smtp, imap), policy())
    await until(lambda: smtp.mails)
    imap.deliver(reply(smtp.mails[0], "deny not this quarter", ALICE))
    result = await task
    assert executor.ran == [] and result.reason == "denied: not this quarter"


async def test_unverified_and_unallowed_replies_are_ignored_and_audited(
    store: AuditStore, smtp: Inbox, imap: Imap
) -> None:
    chan = replying(smtp, imap, (ALICE, BOB))
    task, executor = start(store, chan, policy(f'["email:{ALICE}"]'))
    await until(lambda: len(smtp.mails) == 2)
    to_alice, to_bob = smtp.to(ALICE)[0], smtp.to(BOB)[0]
    imap.deliver(reply(to_alice, "I approve of this", ALICE))  # not a command: not an answer
    imap.deliver(reply(to_alice, "approve", MALLORY))  # never sent the request
    imap.deliver(reply(to_alice, "approve", ALICE, "mx.example.com; dkim=fail header.d=x"))
    imap.deliver(reply(to_bob, "approve", BOB))  # asked, but the rule allows only alice
    await until(lambda: len(store.approvals.list(limit=None)[0].answers) == 3)
    await asyncio.sleep(0.3)
    assert not task.done() and executor.ran == []
    imap.deliver(reply(to_alice, "approve", ALICE, "mx.example.com; spf=pass; dkim=pass"))
    result = await task
    assert result.ok and len(executor.ran) == 1
    (req,) = store.approvals.list(limit=None)
    notes = {(a.responder, a.accepted, a.note) for a in req.answers}
    assert (f"email:{MALLORY}", False, f"refused: {MALLORY} was not sent this request") in notes
    assert (f"email:{ALICE}", False, "refused: Authentication-Results says dkim=fail") in notes
    assert (f"email:{BOB}", False, f"refused: email:{BOB} may not answer for rule big_payment") in (
        notes
    )
    assert (f"email:{ALICE}", True) in {(a.responder, a.accepted) for a in req.answers}
    assert len(req.answers) == 4


async def test_with_an_authserv_id_only_that_servers_pass_counts(
    store: AuditStore, smtp: Inbox, imap: Imap
) -> None:
    chan = replying(smtp, imap, authserv_id="mx.example.com")
    task, executor = start(store, chan, policy(), approval_timeout=30)
    await until(lambda: smtp.mails)
    original = smtp.mails[0]
    imap.deliver(reply(original, "approve", ALICE))  # no results at all
    imap.deliver(reply(original, "approve", ALICE, "evil.example.net; dmarc=pass"))  # forged
    imap.deliver(reply(original, "approve", ALICE, "mx.example.com; dkim=pass header.d=evil.net"))
    imap.deliver(reply(original, "approve", ALICE, "mx.example.com; dkim=pass", html_only=True))
    await until(lambda: len(store.approvals.list(limit=None)[0].answers) == 3)
    await asyncio.sleep(0.3)
    assert not task.done()
    imap.deliver(
        reply(original, "approve", ALICE, "mx.example.com 1; dkim=pass header.d=example.com")
    )
    result = await task
    assert result.ok and len(executor.ran) == 1
    (req,) = store.approvals.list(limit=None)
    refused = [a.note for a in req.answers if not a.accepted]
    assert refused == ["refused: no dmarc=pass or aligned dkim=pass from mx.example.com"] * 3


async def test_a_reply_to_another_request_is_left_for_it(
    store: AuditStore, smtp: Inbox, imap: Imap
) -> None:
    first, _ = start(store, replying(smtp, imap), policy(), approval_timeout=1)
    await until(lambda: smtp.mails)
    other = EmailMessage()
    other["From"], other["Subject"] = ALICE, "Re: something else"
    other["Message-ID"] = "<aegis.0123456789abcdef0123456789abcdef.1@example.com>"
    other.set_content("another request")
    stray = reply(other, "approve", ALICE)
    imap.deliver(stray)
    result = await first
    assert result.status is ResultStatus.DENIED and result.approval is not None
    assert result.approval.timed_out and not imap.seen(stray["Message-ID"])
    assert store.approvals.list(limit=None)[0].answers == ()
