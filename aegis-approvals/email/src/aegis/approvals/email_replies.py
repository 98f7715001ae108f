"""Answers by reply: ``approve`` or ``deny <reason>`` as the first line, read over IMAP.

A reply is only as authentic as its From header, and From is only as trustworthy as the checks
your receiving mail server made (SPF, DKIM, DMARC) and recorded in ``Authentication-Results``.
What is checked here, before anything is reported as an answer:

- exactly one From address, and it is one this request was mailed to (so a rule that lets
  anyone answer still only hears from the people asked);
- no ``Authentication-Results`` header says ``dkim``, ``spf`` or ``dmarc`` = fail, softfail or
  permerror;
- with ``authserv_id`` set (your server's name in those headers): a header from that server
  must say ``dmarc=pass``, or ``dkim=pass`` for the From domain (or a parent of it). Without
  it only ``trust_from`` (the channel's explicit opt-in) lets replies be read at all.

A reply that fails these is reported with ``refused=`` (stored, never counted); whether a
verified sender may answer for the rule is the core's decision, like any other answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import imaplib
import logging
import re
import time
import urllib.parse
from collections.abc import Mapping
from email.message import EmailMessage, Message
from email.utils import getaddresses

from aegis.runtime.approval.channels import Responder
from aegis.runtime.approval.store import ApprovalRequest

log = logging.getLogger("aegis.approvals.email")

_SCHEMES = {"imap": "none", "imap+starttls": "starttls", "imaps": "tls"}
_RESULT = re.compile(r"\b(dkim|spf|dmarc)\s*=\s*([a-z]+)([^;]*)", re.IGNORECASE)
_HEADER_D = re.compile(r"header\.d\s*=\s*([^\s;()]+)", re.IGNORECASE)
_DENY = re.compile(r"deny(?:\s+(.*))?", re.IGNORECASE | re.DOTALL)
_BAD = ("fail", "softfail", "permerror")


def first_command(mail: Message) -> tuple[str, str | None] | None:
    """("approve", None) or ("deny", reason) from the first non-blank line of the text part."""
    part = mail.get_body(preferencelist=("plain",)) if isinstance(mail, EmailMessage) else None
    if part is None:
        return None
    try:
        text = str(part.get_content())
    except (LookupError, ValueError, AttributeError, TypeError):
        return None
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if line.lower() == "approve":
        return "approve", None
    deny = _DENY.fullmatch(line)
    if deny:
        return "deny", (deny.group(1) or "").strip() or None
    return None


class ReplyWatcher:
    """Polls one mailbox (``imap://``, ``imap+starttls://`` or ``imaps://user:pw@host/BOX``)."""

    def __init__(self, url: str, poll_interval: float, authserv_id: str | None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError(f"email channel: IMAP URL must be one of {sorted(_SCHEMES)}://host")
        self.tls = _SCHEMES[parts.scheme]
        self.host = parts.hostname
        self.port = parts.port or (993 if self.tls == "tls" else 143)
        self.user = urllib.parse.unquote(parts.username or "")
        self.password = urllib.parse.unquote(parts.password or "")
        self.mailbox = urllib.parse.unquote(parts.path.strip("/")) or "INBOX"
        self.poll_interval = poll_interval
        self.authserv_id = (authserv_id or "").lower() or None

    async def watch(
        self, request: ApprovalRequest, responder: Responder, sent: Mapping[str, str]
    ) -> None:
        """Report replies to ``request`` until it expires (the runtime cancels us once settled).

        ``sent`` maps each address the request was mailed to (it grows on escalation)."""
        while time.time() < request.expires_at:
            try:
                found = await asyncio.to_thread(self._fetch, request.id)
            except (imaplib.IMAP4.error, OSError) as exc:
                log.warning("IMAP %s:%s: %s: %s", self.host, self.port, type(exc).__name__, exc)
                found = []
            for raw in found:
                try:
                    await self.report(raw, request, responder, sent)
                except Exception:  # one odd mail must not stop the watch
                    log.exception("reply to %s could not be read", request.id)
            await asyncio.sleep(self.poll_interval)

    def _fetch(self, rid: str) -> list[bytes]:
        """Unseen replies that reference one of this request's Message-IDs, marked seen."""
        kind = imaplib.IMAP4_SSL if self.tls == "tls" else imaplib.IMAP4
        conn = kind(self.host, self.port, timeout=30)
        try:
            if self.tls == "starttls":
                conn.starttls()
            conn.login(self.user, self.password)
            if conn.select(self.mailbox)[0] != "OK":
                raise imaplib.IMAP4.error(f"cannot select mailbox {self.mailbox!r}")
            ref = f'"aegis.{rid}."'
            query = f"UNSEEN OR HEADER In-Reply-To {ref} HEADER References {ref}"
            _, data = conn.uid("SEARCH", query)
            found: list[bytes] = []
            for uid in (data[0] or b"").split():
                _, parts = conn.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                raw = next((p[1] for p in parts if isinstance(p, tuple)), None)
                if raw:
                    found.append(raw)
                    conn.uid("STORE", uid.decode(), "+FLAGS", "(\\Seen)")
            return found
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                conn.logout()

    async def report(
        self, raw: bytes, request: ApprovalRequest, responder: Responder, sent: Mapping[str, str]
    ) -> None:
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        command = first_command(mail)
        senders = getaddresses([str(v) for v in mail.get_all("From", [])])
        sender = senders[0][1] if len(senders) == 1 else ""
        if command is None:
            log.info("reply from %s to %s ignored: no command", sender or "?", request.id)
            return
        problem, who = self.check(mail, sender, sent)
        results = "; ".join(str(h) for h in mail.get_all("Authentication-Results", []))
        proof = f"reply {mail.get('Message-ID', '?')}; {results or 'no Authentication-Results'}"
        outcome = await responder.respond(
            responder.token(request),  # matched to the message we sent, by its headers
            who,
            command[0],
            command[1],
            proof=proof[:2000],
            digest=request.digest,
            refused=problem or None,
        )
        log.info("reply from %s to %s: %s", who, request.id, outcome.message)

    def check(self, mail: Message, sender: str, sent: Mapping[str, str]) -> tuple[str, str]:
        """('', the recipient as addressed) for a verified sender, else (why not, who it says)."""
        if not sender:
            return "the reply has no single From address", "unknown"
        who = {r.lower(): r for r in sent}.get(sender.lower())
        if who is None:
            return f"{sender} was not sent this request", sender
        domain = sender.rpartition("@")[2].lower()
        results: list[tuple[str, str, str]] = []
        for header in mail.get_all("Authentication-Results", []):
            server, _, rest = str(header).partition(";")
            if self.authserv_id and server.lower().split()[:1] != [self.authserv_id]:
                continue
            results += [(m.lower(), r.lower(), p) for m, r, p in _RESULT.findall(rest)]
        bad = [f"{m}={r}" for m, r, _ in results if r in _BAD]
        if bad:
            return f"Authentication-Results says {', '.join(bad)}", who
        if self.authserv_id and not any(_passes(m, r, p, domain) for m, r, p in results):
            return f"no dmarc=pass or aligned dkim=pass from {self.authserv_id}", who
        return "", who


def _passes(method: str, result: str, props: str, domain: str) -> bool:
    if result != "pass":
        return False
    if method == "dmarc":
        return True
    signer = _HEADER_D.search(props)
    d = signer.group(1).lower() if signer else ""
    return method == "dkim" and bool(d) and (domain == d or domain.endswith("." + d))
