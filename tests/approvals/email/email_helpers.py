"""A real SMTP server (aiosmtpd) and a real IMAP server (pymap) on 127.0.0.1 for the e-mail
channel, plus the runtime plumbing its tests share."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aegis.approvals.email import EmailChannel, link_page
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from aegis import Action, Policy, Runtime
from aegis.http import HttpRequest, HttpResponse, RouteContext
from aegis.runtime.audit import AuditStore
from plugin_helpers import Recorder, payment_policy

SECRET = "link-secret-link-secret-0123456789"
SENDER = "aegis@example.com"
BASE = "https://aegis.example.com"
PAY = Action(
    "pay",
    "bank",
    params={"amount": 5000, "api_key": "sk-live-abcdefghijklmnop1234"},
    agent_id="billing-bot",
    session_id="sess-42",
)


def policy(approvers: str = "", extra_rules: str = "") -> Policy:
    """Payments over 1,000 ask a human; ``extra_rules`` go first."""
    return payment_policy(approvers, above=1000, extra_rules=extra_rules)


def free_port() -> int:
    """aiosmtpd's Controller(port=0) fails its own self-check: pick the port first."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """The aiosmtpd handler: keeps every accepted mail; ``fail_next`` answers 451 that often."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.rcpts: list[list[str]] = []
        self.fail_next = 0
        self.attempts = 0
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            return "451 4.3.0 try again later"
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append(mail)
        self.rcpts.append(list(envelope.rcpt_tos))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.mails if m["To"] == address]


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"aegis", b"pw:1")
    return AuthResult(success=ok)


def start_smtp(*, auth: bool = False) -> tuple[Inbox, Controller]:
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=inbox.port,
        auth_require_tls=False,
        auth_required=auth,
        authenticator=_authenticate,
    )
    controller.start()
    return inbox, controller


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    inbox, controller = start_smtp()
    yield inbox
    controller.stop()


class Imap:
    """pymap's in-memory backend; replies are delivered by APPEND, as the MTA would."""

    user, password = "demouser", "demopass"

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"imap://{self.user}:{self.password}@127.0.0.1:{port}/INBOX"

    def deliver(self, mail: EmailMessage) -> None:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            conn.login(self.user, self.password)
            conn.append("INBOX", None, None, mail.as_bytes())
        finally:
            conn.logout()

    def seen(self, message_id: str) -> bool:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            conn.login(self.user, self.password)
            conn.select("INBOX")
            _, data = conn.uid("SEARCH", f'SEEN HEADER Message-ID "{message_id}"')
            return bool(data[0])
        finally:
            conn.logout()


@pytest.fixture(scope="module")
def imap() -> Iterator[Imap]:
    binary = Path(sys.executable).parent / "pymap"
    if not binary.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("pymap is not installed (the test extra of agent-aegis-email)")
        pytest.skip("pymap is not installed")
    port = free_port()
    args = ["--no-tls", "--host", "127.0.0.1", "--port", str(port), "--no-service", "admin"]
    proc = subprocess.Popen(
        [str(binary), *args, "dict", "--demo-data"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("pymap did not start")
        yield Imap(port)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(autouse=True)
def _route_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `aegis serve` would have in its environment for the link route."""
    monkeypatch.setenv("AEGIS_EMAIL_LINK_SECRET", SECRET)


def channel(inbox: Inbox, to: list[str], **kw: Any) -> EmailChannel:
    kw.setdefault("smtp_url", f"smtp://127.0.0.1:{inbox.port}")
    return EmailChannel(sender=SENDER, to=to, link_secret=SECRET, base_url=BASE, **kw)


def start(
    store: AuditStore, chan: EmailChannel, pol: Policy, action: Action = PAY, **kw: Any
) -> tuple[asyncio.Future[Any], Recorder]:
    executor = Recorder()

    async def go() -> Any:
        async with Runtime(
            executor=executor, policy=pol, approval_handler=chan, audit=store, **kw
        ) as rt:
            return await rt.run_one(action)

    return asyncio.ensure_future(go()), executor


async def until(check: Callable[[], Any], seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None, "no text part"
    return str(part.get_content()).replace("\r\n", "\n")


def links(mail: EmailMessage) -> dict[str, str]:
    """{"approve": link, "deny": link} from a request mail's text."""
    text = text_of(mail)
    found = re.findall(
        r"^(Approve|Deny): " + re.escape(BASE) + r"/approvals/email/(\S+)$", text, re.M
    )
    return {verdict.lower(): link for verdict, link in found}


async def visit(
    store: AuditStore, link: str, method: str = "GET", form: dict[str, str] | None = None
) -> HttpResponse:
    import urllib.parse

    body = urllib.parse.urlencode(form or {}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    request = HttpRequest(
        method,
        f"/approvals/email/{link}",
        headers,
        {},
        body if method == "POST" else b"",
        params={"link": link},
        context=RouteContext(store),
    )
    return await link_page(request)
