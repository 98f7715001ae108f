"""``POST /discord/interactions`` on ``aegis serve``: Discord's HTTP interactions.

Apart from ``discord`` because it runs in the server, not in the channel: no bot connection,
only a request whose Ed25519 signature over timestamp + raw body is verified before anything
is parsed, a guard against replayed interaction ids, and the JSON reply Discord expects.
The click itself is decided by ``discord_clicks.answer``, as on the gateway.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from aegis.approvals.discord_clicks import Reply, Say, answer
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aegis.http import HttpRequest, HttpResponse
from aegis.runtime.approval.store import ApprovalRequest

INTERACTIONS_PATH = "/discord/interactions"
#: Signed interactions older (or newer) than this are refused as stale.
WINDOW = 300.0
EPHEMERAL = 64


def verify(
    public_key: str, body: bytes, headers: Mapping[str, str], now: float | None = None
) -> str:
    """'' when ``body`` carries Discord's valid, fresh Ed25519 signature; else why not."""
    lower = {k.lower(): v for k, v in headers.items()}
    signature, ts = lower.get("x-signature-ed25519", ""), lower.get("x-signature-timestamp", "")
    if not ts.isdigit() or not signature:
        return "missing or malformed signature headers"
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        key.verify(bytes.fromhex(signature), ts.encode() + body)
    except (ValueError, InvalidSignature):
        return "bad signature"
    if abs((time.time() if now is None else now) - int(ts)) > WINDOW:
        return "stale timestamp"
    return ""


_SEEN_HTTP: collections.OrderedDict[str, None] = collections.OrderedDict()


def _reply_json(reply: Reply) -> dict[str, Any]:
    if isinstance(reply, Say):
        return {"type": 4, "data": {"content": reply.text, "flags": EPHEMERAL}}
    field = {
        "type": 4,
        "custom_id": reply.field,
        "style": 2,
        "label": reply.label,
        "required": reply.required,
        **({"value": reply.default} if reply.default else {}),
    }
    return {
        "type": 9,
        "data": {
            "custom_id": reply.custom_id,
            "title": reply.title,
            "components": [{"type": 1, "components": [field]}],
        },
    }


async def interactions(request: HttpRequest) -> HttpResponse:
    """``POST /discord/interactions``: Discord's signed HTTP interactions (PING, clicks, modals)."""
    public_key = os.environ.get("AEGIS_DISCORD_PUBLIC_KEY", "")
    if request.context is None or len(public_key) != 64:
        return HttpResponse.json({"error": "not configured: set AEGIS_DISCORD_PUBLIC_KEY"}, 503)
    problem = verify(public_key, request.body, request.headers)
    if problem:
        return HttpResponse.json({"error": "invalid request signature", "detail": problem}, 401)
    try:
        payload = json.loads(request.body)
        kind, interaction_id = int(payload["type"]), str(payload["id"])
    except (ValueError, KeyError, TypeError):
        return HttpResponse.json({"error": "bad request"}, 400)
    if kind == 1:
        return HttpResponse.json({"type": 1})
    if interaction_id in _SEEN_HTTP:
        return HttpResponse.json({"error": "replayed interaction"}, 409)
    _SEEN_HTTP[interaction_id] = None
    while len(_SEEN_HTTP) > 4096:
        _SEEN_HTTP.popitem(last=False)
    user = (payload.get("member") or {}).get("user") or payload.get("user") or {}
    data = payload.get("data")
    if not isinstance(data, dict) or not str(user.get("id", "")).isdigit():
        return HttpResponse.json({"error": "bad request", "detail": "no data or user"}, 400)
    book = request.context.store.approvals

    async def lookup(token: str) -> ApprovalRequest | None:
        try:
            return await book.run(book.get, token)
        except Exception:  # an unknown or forged ref: the answer itself is refused by the core
            return None

    ts, signature = request.header("x-signature-timestamp"), request.header("x-signature-ed25519")
    proof = f"ed25519 t={ts} sig={signature}"
    responder = request.context.responder("discord")
    reply = await answer(kind, data, str(user["id"]), responder, proof, lookup)
    if reply is None:
        reply = Say("Not an Aegis button.")
    return HttpResponse.json(_reply_json(reply))
