"""The signed approve / deny links an approval mail carries, and the page they open on
``aegis serve``.

Apart from ``email`` because a link is checked where it is opened, in the server, which has
no SMTP settings or channel: only ``AEGIS_EMAIL_LINK_SECRET`` and the audit store. A link
names the request's callback token, the recipient it was mailed to, the verdict and the
request's expiry, signed with HMAC-SHA256; opening it shows a confirmation page (mail
scanners prefetch links, so a GET never answers) and the page's form POSTs the answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import math
import os
import time
import urllib.parse

import attrs

from aegis.errors import ApprovalError, AuditError
from aegis.http import HttpRequest, HttpResponse
from aegis.runtime.approval.channels import summary_text
from aegis.runtime.approval.rules import diff_edits
from aegis.runtime.approval.store import ApprovalRequest

ROUTE = "/approvals/email/{link}"
PREFIX = "/approvals/email/"
MAX_FORM = 64 * 1024


# --- links -------------------------------------------------------------------------------------


@attrs.frozen
class Link:
    token: str
    recipient: str
    verdict: str
    expires: int
    mac: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, b"aegis-email-link|" + body.encode(), hashlib.sha256).digest())


def make_link(secret: bytes, token: str, recipient: str, verdict: str, expires_at: float) -> str:
    """``<payload>.<mac>``, both base64url: the request token, who it was sent to, the verdict
    and the request's expiry, so none of them can be changed without the secret."""
    payload = json.dumps([1, token, recipient, verdict, math.ceil(expires_at)])
    body = _b64(payload.encode())
    return f"{body}.{_mac(secret, body)}"


def read_link(secret: bytes, link: str, now: float | None = None) -> tuple[Link | None, str]:
    """(the link, "") when it is ours, unaltered and unexpired; else (None, why not)."""
    body, _, mac = link.partition(".")
    if not body or not mac or not hmac.compare_digest(mac, _mac(secret, body)):
        return None, "this link is not valid (altered, or not issued by this server)"
    try:
        version, token, recipient, verdict, expires = json.loads(
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        )
    except (ValueError, TypeError):
        return None, "this link is not valid (unreadable)"
    if version != 1 or verdict not in ("approve", "deny"):
        return None, "this link is not valid (unknown kind)"
    if (time.time() if now is None else now) > expires:
        return None, "this link has expired, and so has the request it was for"
    return Link(str(token), str(recipient), verdict, int(expires), mac), ""


def load_secret(value: str | bytes | None = None) -> bytes:
    raw = value if value is not None else os.environ.get("AEGIS_EMAIL_LINK_SECRET", "")
    secret = raw.encode() if isinstance(raw, str) else raw
    if len(secret) < 16:
        raise ValueError("email channel: AEGIS_EMAIL_LINK_SECRET must be at least 16 bytes")
    return secret


# --- the link route ----------------------------------------------------------------------------


def _page(title: str, *parts: str, status: int = 200) -> HttpResponse:
    body = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        + "".join(parts)
        + "</body></html>"
    )
    headers = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",  # the URL is the credential
        "Content-Security-Policy": "default-src 'none'; form-action 'self'",
        "X-Frame-Options": "DENY",
    }
    return HttpResponse(status, body.encode(), "text/html; charset=utf-8", headers)


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def _form(link: Link, request: ApprovalRequest) -> str:
    fields = '<p><label>Reason (optional)<br><input name="reason" size="60"></label></p>'
    if link.verdict == "approve" and request.requirements.quorum == 1:
        params = html.escape(json.dumps(request.params, indent=2, ensure_ascii=False))
        fields += (
            "<p><label>Params (edit to change what runs; the edited action is checked"
            f' against the policy again)<br><textarea name="params" rows="12" cols="70">'
            f"{params}</textarea></label></p>"
        )
    button = "Approve" if link.verdict == "approve" else "Deny"
    return f'<form method="post">{fields}<p><button type="submit">{button}</button></p></form>'


async def link_page(request: HttpRequest) -> HttpResponse:
    """``GET /approvals/email/{link}`` shows the request and a form; ``POST`` answers it."""
    if request.method not in ("GET", "POST"):
        return _page("Method not allowed", status=405)
    if request.context is None:
        return _page("Not available", _p("no audit store"), status=503)
    try:
        secret = load_secret()
    except ValueError as exc:
        return _page("Not configured", _p(str(exc)), status=503)
    link, problem = read_link(secret, request.params.get("link", ""))
    if link is None:
        return _page("Link refused", _p(problem), status=410 if "expired" in problem else 403)
    book = request.context.store.approvals
    try:
        found = await book.run(book.get, link.token)
    except ApprovalError as exc:
        return _page("Link refused", _p(str(exc)), status=404)
    except AuditError as exc:
        return _page("Not available", _p(str(exc)), status=503)
    summary = f"<pre>{html.escape(summary_text(found))}</pre>"
    who = _p(f"You answer as {link.recipient}.")
    if request.method == "GET":
        if found.state != "pending":
            return _page(f"Already {found.state}", summary, status=409)
        return _page(f"{link.verdict.capitalize()} this action?", summary, who, _form(link, found))
    if len(request.body) > MAX_FORM:
        return _page("Too large", status=413)
    try:
        form = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"), max_num_fields=8)
        edits = None
        if link.verdict == "approve" and "params" in form:
            edits = diff_edits(found.params, json.loads(form["params"][0])) or None
    except (ValueError, RecursionError) as exc:
        return _page("Not answered", _p(str(exc)), summary, status=400)
    reason = (form.get("reason", [""])[0].strip()[:2000]) or None
    outcome = await request.context.responder("email").respond(
        link.token, link.recipient, link.verdict, reason, edits, f"email link {link.mac[:16]}"
    )
    title = "Answer recorded" if outcome.accepted else "Answer refused"
    return _page(title, _p(outcome.message), summary, status=200 if outcome.accepted else 409)
