"""Approval channel: mail each approver signed approve / deny links (and read their replies).

The channel only carries messages. Each mail carries signed links (``email_links``: how they
are signed, and the confirmation page they open on ``aegis serve``), or is answered by reply
(``email_replies``). Everything after that — the binding to the action's digest, single use,
the allow list (``email:<address>``), quorum and expiry — is checked by the core in
``responder.respond``.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, ClassVar

import aiosmtplib
from aegis.approvals.email_links import (
    MAX_FORM,
    PREFIX,
    ROUTE,
    Link,
    link_page,
    load_secret,
    make_link,
    read_link,
)

from aegis.hookspecs import Register, hookimpl
from aegis.runtime.approval.channels import ApprovalChannel, Responder, summary_text
from aegis.runtime.approval.retry import TryAgain, until
from aegis.runtime.approval.store import ApprovalRequest

log = logging.getLogger("aegis.approvals.email")

__all__ = [
    "MAX_FORM",
    "PREFIX",
    "ROUTE",
    "EmailChannel",
    "Link",
    "aegis_register_approval_handlers",
    "aegis_register_routes",
    "link_page",
    "load_secret",
    "make_link",
    "read_link",
    "smtp_options",
]

_TLS_MODES = {"auto": None, "starttls": True, "none": False, "tls": False}
_SCHEMES = {"smtp": "auto", "smtp+starttls": "starttls", "smtps": "tls"}


# --- settings ----------------------------------------------------------------------------------


def smtp_options(
    url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    username: str | None = None,
    password: str | None = None,
    tls: str | None = None,
) -> dict[str, Any]:
    """aiosmtplib keyword options from a URL (``smtp://``, ``smtp+starttls://``, ``smtps://``,
    with ``user:password@``) or from the separate settings, each defaulting to its env var."""
    env = os.environ.get
    url = url or env("AEGIS_EMAIL_SMTP_URL")
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ValueError(f"email channel: SMTP URL scheme must be one of {sorted(_SCHEMES)}")
        host, port, tls = parts.hostname, parts.port, _SCHEMES[parts.scheme]
        username = urllib.parse.unquote(parts.username) if parts.username else None
        password = urllib.parse.unquote(parts.password) if parts.password else None
    else:
        host = host or env("AEGIS_EMAIL_SMTP_HOST")
        port = port or int(env("AEGIS_EMAIL_SMTP_PORT") or 0) or None
        username = username or env("AEGIS_EMAIL_SMTP_USER")
        password = password or env("AEGIS_EMAIL_SMTP_PASSWORD")
        tls = tls or env("AEGIS_EMAIL_SMTP_TLS") or "auto"
    if not host:
        raise ValueError("email channel: set AEGIS_EMAIL_SMTP_URL or AEGIS_EMAIL_SMTP_HOST")
    if tls not in _TLS_MODES:
        raise ValueError(f"email channel: SMTP tls must be one of {sorted(_TLS_MODES)}")
    default_port = {"tls": 465, "starttls": 587}.get(tls, 25)
    return {
        "hostname": host,
        "port": port or default_port,
        "username": username,
        "password": password,
        "use_tls": tls == "tls",
        "start_tls": _TLS_MODES[tls],
    }


def _addresses(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        value = os.environ.get("AEGIS_EMAIL_TO", "")
    items = value.split(",") if isinstance(value, str) else list(value)
    return [a.strip() for a in items if a.strip()]


def _clean(text: str, limit: int = 150) -> str:
    """One header-safe line: an agent chooses action names, never our mail headers."""
    flat = re.sub(r"[\x00-\x1f\x7f\u2028\u2029\x85]+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- the channel -------------------------------------------------------------------------------


class EmailChannel(ApprovalChannel):
    """Every argument defaults to its ``AEGIS_EMAIL_*`` environment variable (README)."""

    name: ClassVar[str] = "email"
    answers_with_tokens: ClassVar[bool] = True  # button data and links come from outside

    def __init__(
        self,
        *,
        smtp_url: str | None = None,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: str | None = None,
        sender: str | None = None,
        to: str | Sequence[str] | None = None,
        link_secret: str | bytes | None = None,
        base_url: str | None = None,
        imap_url: str | None = None,
        poll_interval: float = 10.0,
        authserv_id: str | None = None,
        attempt_timeout: float = 30.0,
        trust_from: bool | None = None,
    ) -> None:
        self.smtp = smtp_options(smtp_url, host, port, username, password, tls)
        self.sender = sender or os.environ.get("AEGIS_EMAIL_FROM", "")
        if "@" not in self.sender:
            raise ValueError("email channel: give sender= or set AEGIS_EMAIL_FROM to an address")
        self.to = _addresses(to)
        self.base_url = (base_url or os.environ.get("AEGIS_EMAIL_BASE_URL", "")).rstrip("/")
        has_secret = link_secret is not None or "AEGIS_EMAIL_LINK_SECRET" in os.environ
        self.secret = load_secret(link_secret) if has_secret else None
        if (self.secret is None) != (not self.base_url):
            raise ValueError("email channel: links need both AEGIS_EMAIL_BASE_URL and a secret")
        imap_url = imap_url or os.environ.get("AEGIS_EMAIL_IMAP_URL")
        self.replies = None
        if imap_url:
            from aegis.approvals.email_replies import ReplyWatcher

            authserv_id = authserv_id or os.environ.get("AEGIS_EMAIL_AUTHSERV_ID")
            if trust_from is None:
                trust_from = os.environ.get("AEGIS_EMAIL_TRUST_FROM", "") in ("1", "true", "yes")
            if not authserv_id and not trust_from:
                # Nothing would vouch for From: anyone could write "From: alice@…" and approve.
                raise ValueError(
                    "email channel: replies need authserv_id (AEGIS_EMAIL_AUTHSERV_ID), the "
                    "receiving server whose DKIM/DMARC results count; or trust_from=True "
                    "(AEGIS_EMAIL_TRUST_FROM=1) when only your own server delivers to it"
                )
            self.replies = ReplyWatcher(imap_url, poll_interval, authserv_id)
        if self.secret is None and self.replies is None:
            raise ValueError("email channel: configure links (base URL + secret) or IMAP replies")
        self.attempt_timeout = attempt_timeout
        self._sent: dict[str, dict[str, str]] = {}  # request id -> recipient -> Message-ID

    def recipients(self, request: ApprovalRequest, *, escalated: bool = False) -> list[str]:
        """The configured addresses plus the exact ``email:`` approvers the rule names."""
        terms = request.requirements
        named = [
            p[len("email:") :]
            for p in (terms.allow or ()) + (terms.escalate_to if escalated else ())
            if p.startswith("email:") and "@" in p and not any(c in p for c in "*?[")
        ]
        return list(dict.fromkeys([*self.to, *named]))

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        await self._ask(request, responder, self.recipients(request))
        if self.replies is not None:
            sent = self._sent.setdefault(request.id, {})
            await self.replies.watch(request, responder, sent)

    async def escalated(self, request: ApprovalRequest, responder: Responder) -> None:
        sent = self._sent.get(request.id, {})
        new = [r for r in self.recipients(request, escalated=True) if r not in sent]
        if new:
            await self._ask(request, responder, new)

    async def settled(self, request: ApprovalRequest) -> None:
        sent = self._sent.pop(request.id, None) or {r: "" for r in self.recipients(request)}
        headline = request.outcome or request.state
        mails = []
        for recipient, message_id in sent.items():
            mail = self._mail(recipient, f"[{request.state}] {self._subject(request)}")
            if message_id:
                mail["In-Reply-To"] = mail["References"] = message_id
            mail.set_content(f"{headline}\n\n{summary_text(request)}\n")
            mails.append(mail)
        await self._send(mails, deadline=time.time() + 4.5)  # the runtime allows 5 s

    async def _ask(
        self, request: ApprovalRequest, responder: Responder, recipients: Sequence[str]
    ) -> None:
        if not recipients:
            log.warning("approval request %s: no e-mail recipients configured", request.id)
            return
        token = responder.token(request)
        sent = self._sent.setdefault(request.id, {})
        mails = []
        for recipient in recipients:
            mail = self._mail(recipient, self._subject(request))
            mail["Message-ID"] = sent[recipient] = self._message_id(request)
            mail.set_content(self._body(request, token, recipient))
            mails.append(mail)
        await self._send(mails, deadline=request.expires_at)

    def _subject(self, request: ApprovalRequest) -> str:
        return _clean(f"Approval needed: {request.action_type} -> {request.target}")

    def _mail(self, recipient: str, subject: str) -> EmailMessage:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = self.sender, recipient, subject
        mail["Date"] = formatdate()
        mail["Auto-Submitted"] = "auto-generated"
        return mail

    def _message_id(self, request: ApprovalRequest) -> str:
        domain = self.sender.rpartition("@")[2].strip("> ")
        return f"<aegis.{request.id}.{secrets.token_hex(6)}@{domain}>"

    def _body(self, request: ApprovalRequest, token: str, recipient: str) -> str:
        lines = [summary_text(request), ""]
        if self.secret is not None:
            for verdict in ("approve", "deny"):
                link = make_link(self.secret, token, recipient, verdict, request.expires_at)
                lines.append(f"{verdict.capitalize()}: {self.base_url}{PREFIX}{link}")
            lines += [
                "",
                "Each link opens a page that asks you to confirm; nothing is decided before.",
                f"The links answer as {recipient}: do not forward this mail.",
            ]
        if self.replies is not None:
            lines.append('Or reply with "approve" or "deny <reason>" as the first line.')
        return "\n".join(lines) + "\n"

    async def _send(self, mails: Sequence[EmailMessage], *, deadline: float) -> bool:
        """Send each mail; retry temporary failures with backoff until ``deadline``."""
        pending = list(mails)

        async def attempt() -> bool:
            failed: list[EmailMessage] = []
            why = ""
            for mail in pending:
                try:
                    timeout = max(1.0, min(self.attempt_timeout, deadline - time.time()))
                    await aiosmtplib.send(mail, sender=self.sender, timeout=timeout, **self.smtp)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    why = f"{type(exc).__name__}: {exc}"
                    if _permanent(exc):
                        log.warning("mail to %s refused for good: %s", mail["To"], why)
                    else:
                        failed.append(mail)
            pending[:] = failed  # only these are sent again
            if failed:
                raise TryAgain(why)
            return True

        return bool(await until(attempt, deadline, f"mail server {self.smtp['hostname']}", log))


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600


@hookimpl
def aegis_register_approval_handlers(register: Register) -> None:
    register("email", EmailChannel, description="mail approvers links / read replies (SMTP, IMAP)")


@hookimpl
def aegis_register_routes(register: Register) -> None:
    register(ROUTE, link_page, methods=["GET", "POST"])
