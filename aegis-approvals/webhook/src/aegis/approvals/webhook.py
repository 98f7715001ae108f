"""Approval channel: POST each request, signed, to your endpoint; take its signed answer.

The channel only carries messages: the answer goes through ``responder.respond`` and the core
checks it (binding to the request and action digest, the allow list, quorum, expiry). What this
module owns is the signature: HMAC-SHA256 over ``"{timestamp}.{body}"`` with a shared secret,
verified on the raw bytes, in constant time, within a 300 s window.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from aegis.hookspecs import Register, hookimpl
from aegis.http import HttpRequest, HttpResponse
from aegis.runtime.approval.channels import ApprovalChannel, Responder, describe
from aegis.runtime.approval.retry import TryAgain, until
from aegis.runtime.approval.store import ApprovalRequest

log = logging.getLogger("aegis.approvals.webhook")

CALLBACK_PATH = "/approvals/webhook"
TIMESTAMP_HEADER = "x-aegis-timestamp"
SIGNATURE_HEADER = "x-aegis-signature"
WINDOW = 300.0


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers that sign ``body``: ``X-Aegis-Timestamp`` and ``X-Aegis-Signature: v1=<hex>``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Aegis-Timestamp": ts, "X-Aegis-Signature": f"v1={mac}"}


def verify(secret: bytes, body: bytes, headers: Mapping[str, str], now: float | None = None) -> str:
    """'' when ``body`` carries a valid, fresh signature; else why not."""
    lower = {k.lower(): v for k, v in headers.items()}
    ts, signature = lower.get(TIMESTAMP_HEADER, ""), lower.get(SIGNATURE_HEADER, "")
    if not ts.isdigit() or not signature.startswith("v1="):
        return "missing or malformed signature headers"
    if abs((time.time() if now is None else now) - int(ts)) > WINDOW:
        return "stale timestamp"
    expected = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature[3:], expected):
        return "bad signature"
    return ""


def _secret(value: str | bytes | None) -> bytes:
    raw = value if value is not None else os.environ.get("AEGIS_WEBHOOK_SECRET", "")
    secret = raw.encode() if isinstance(raw, str) else raw
    if len(secret) < 16:
        raise ValueError("webhook channel: a shared secret of at least 16 bytes is required")
    return secret


class WebhookChannel(ApprovalChannel):
    """``url``/``secret`` default to ``$AEGIS_WEBHOOK_URL`` / ``$AEGIS_WEBHOOK_SECRET``."""

    name: ClassVar[str] = "webhook"
    answers_with_tokens: ClassVar[bool] = True  # button data and links come from outside

    def __init__(
        self,
        url: str | None = None,
        secret: str | bytes | None = None,
        *,
        attempt_timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url or os.environ.get("AEGIS_WEBHOOK_URL", "")
        if not self.url:
            raise ValueError("webhook channel: give url= or set AEGIS_WEBHOOK_URL")
        self.secret = _secret(secret)
        self.attempt_timeout = attempt_timeout
        self._client = client

    async def notify(self, request: ApprovalRequest, responder: Responder) -> None:
        token = responder.token(request)
        message = {
            "type": "approval_request",
            "request": describe(request),
            "token": token,
            "callback": CALLBACK_PATH,
        }
        response = await self._post(message, deadline=request.expires_at)
        if response is None or response.status_code != 200 or not response.content:
            return  # 202 / 204: the answer comes later, by callback
        problem = verify(self.secret, response.content, response.headers)
        if problem:
            log.warning("webhook answer for %s refused: %s", request.id, problem)
            return
        await report(responder, response.content, proof=response.headers.get(SIGNATURE_HEADER))

    async def settled(self, request: ApprovalRequest) -> None:
        await self._post(
            {"type": "approval_settled", "request": describe(request)},
            deadline=time.time() + 30,
        )

    async def _post(self, message: dict[str, Any], *, deadline: float) -> httpx.Response | None:
        """POST with retries (429 honouring Retry-After, 5xx, network errors) until deadline."""
        body = json.dumps(message, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        client = self._client or httpx.AsyncClient(timeout=self.attempt_timeout)

        async def attempt() -> httpx.Response:
            headers.update(sign(self.secret, body))  # a fresh timestamp per attempt
            try:
                response = await client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise TryAgain(f"{type(exc).__name__}: {exc}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise TryAgain(f"HTTP {response.status_code}", _retry_after(response))
            return response

        try:
            return await until(attempt, deadline, f"webhook {self.url}", log)
        finally:
            if self._client is None:
                await client.aclose()


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("retry-after", "0")), 60.0)
    except ValueError:
        return 0.0


async def report(responder: Responder, body: bytes, proof: str | None) -> Any:
    """Pass one signed answer ``{"token", "verdict", "responder", "reason", "edits"}`` on."""
    data = json.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        raise ValueError("an answer needs a token")
    edits = data.get("edits")
    # Edits the approver sent but no one can read must not become "approved as it was".
    bad = None if edits is None or isinstance(edits, dict) else type(edits).__name__
    return await responder.respond(
        data["token"],
        str(data.get("responder") or "unknown"),
        str(data.get("verdict", "")),
        data.get("reason"),
        edits if bad is None else None,
        proof,
        refused=None if bad is None else f"edits must be a JSON object, not {bad}",
    )


async def callback(request: HttpRequest) -> HttpResponse:
    """``POST /approvals/webhook``: a signed answer that came later than the request."""
    if request.context is None:
        return HttpResponse.json({"error": "not served", "detail": "no audit store"}, 503)
    try:
        secret = _secret(None)
    except ValueError as exc:
        return HttpResponse.json({"error": "not configured", "detail": str(exc)}, 503)
    problem = verify(secret, request.body, request.headers)
    if problem:
        return HttpResponse.json({"error": "unauthorized", "detail": problem}, 401)
    try:
        outcome = await report(
            request.context.responder("webhook"), request.body, request.header(SIGNATURE_HEADER)
        )
    except (ValueError, TypeError) as exc:
        return HttpResponse.json({"error": "bad request", "detail": str(exc)}, 400)
    status = 200 if outcome.accepted else 409
    return HttpResponse.json(
        {"accepted": outcome.accepted, "state": outcome.state, "detail": outcome.message}, status
    )


@hookimpl
def aegis_register_approval_handlers(register: Register) -> None:
    register("webhook", WebhookChannel, description="POST signed requests to $AEGIS_WEBHOOK_URL")


@hookimpl
def aegis_register_routes(register: Register) -> None:
    register(CALLBACK_PATH, callback, methods=["POST"])
