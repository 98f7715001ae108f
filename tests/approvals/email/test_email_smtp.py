"""The SMTP side: retries, outages and AUTH against a real aiosmtpd server."""

from __future__ import annotations

import pytest
from aegis.approvals.email import smtp_options
from email_helpers import Inbox, channel, free_port, links, policy, start, start_smtp, until, visit

from aegis.core.result import ResultStatus
from aegis.runtime.audit import AuditStore

ALICE = "alice@example.com"


async def test_a_mail_server_that_stays_down_means_denied(store: AuditStore) -> None:
    down = Inbox()
    down.port = free_port()  # nothing listens there
    task, executor = start(store, channel(down, [ALICE]), policy(), approval_timeout=1.5)
    result = await task
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.approval is not None and result.approval.timed_out
    assert store.approvals.list(limit=None)[0].state == "expired"


async def test_temporary_failures_are_retried_then_the_answer_counts(
    store: AuditStore, smtp: Inbox
) -> None:
    smtp.fail_next = 2  # 451 twice
    task, executor = start(store, channel(smtp, [ALICE]), policy())
    await until(lambda: smtp.mails)
    assert smtp.attempts == 3
    await visit(store, links(smtp.mails[0])["approve"], "POST")
    result = await task
    assert result.ok and len(executor.ran) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_auth_credentials_from_the_url_are_used(store: AuditStore) -> None:
    inbox, controller = start_smtp(auth=True)
    try:
        good = channel(inbox, [ALICE], smtp_url=f"smtp://aegis:pw%3A1@127.0.0.1:{inbox.port}")
        task, executor = start(store, good, policy())
        await until(lambda: inbox.mails)
        await visit(store, links(inbox.mails[0])["approve"], "POST")
        assert (await task).ok and len(executor.ran) == 1
        bad = channel(inbox, [ALICE], smtp_url=f"smtp://aegis:wrong@127.0.0.1:{inbox.port}")
        task, executor = start(store, bad, policy(), approval_timeout=1.5)
        result = await task  # 535 is permanent: not retried, the request expires
        assert executor.ran == [] and result.status is ResultStatus.DENIED
        assert len(inbox.mails) == 2  # the first request's follow-up only
    finally:
        controller.stop()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtps://u:p%40ss@mail.example.com", ("mail.example.com", 465, "u", "p@ss", True, False)),
        ("smtp+starttls://mail.example.com", ("mail.example.com", 587, None, None, False, True)),
        ("smtp://127.0.0.1:2525", ("127.0.0.1", 2525, None, None, False, None)),
    ],
)
def test_smtp_urls(url: str, expected: tuple[object, ...]) -> None:
    options = smtp_options(url)
    keys = ("hostname", "port", "username", "password", "use_tls", "start_tls")
    assert tuple(options[k] for k in keys) == expected


def test_separate_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AEGIS_EMAIL_SMTP_URL", raising=False)
    for key, value in {
        "HOST": "mx",
        "PORT": "26",
        "USER": "u",
        "PASSWORD": "p",
        "TLS": "none",
    }.items():
        monkeypatch.setenv(f"AEGIS_EMAIL_SMTP_{key}", value)
    assert smtp_options() == {
        "hostname": "mx",
        "port": 26,
        "username": "u",
        "password": "p",
        "use_tls": False,
        "start_tls": False,
    }
    monkeypatch.setenv("AEGIS_EMAIL_SMTP_TLS", "maybe")
    with pytest.raises(ValueError, match="tls must be one of"):
        smtp_options()
