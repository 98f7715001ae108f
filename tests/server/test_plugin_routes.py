"""Routes a channel plugin registers are mounted with the raw body and no API key, and the
answers they report go through the core's check like any other."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient
from server_helpers import bearer

from aegis import hookimpl, plugins
from aegis.http import HttpRequest, HttpResponse
from aegis.runtime.audit import AuditStore

SECRET = b"channel-signing-secret"


class SignedCallbackPlugin:
    """A stand-in channel: verifies an HMAC over the exact bytes, then reports the answer."""

    def __init__(self) -> None:
        self.seen: list[HttpRequest] = []

    async def callback(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        sig = request.header("x-signature") or ""
        good = hmac.new(SECRET, request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig, good):
            return HttpResponse.json({"error": "bad signature"}, status=401)
        assert request.context is not None
        data = request.json()
        responder = request.context.responder("chat")
        outcome = await responder.respond(request.params["rid"], data["user"], data["verdict"])
        return HttpResponse.json({"accepted": outcome.accepted, "message": outcome.message})

    @hookimpl
    def aegis_register_routes(self, register) -> None:  # type: ignore[no-untyped-def]
        register("/chat/callback/{rid}", self.callback, methods=["POST"])


@pytest.fixture
def channel() -> Iterator[SignedCallbackPlugin]:
    plugin = SignedCallbackPlugin()
    name = plugins.register_plugin(plugin, name="test-signed-callback")
    yield plugin
    plugins.unregister_plugin(name)


def test_route_gets_raw_body_and_needs_no_api_key(make_app, channel, db_url: str) -> None:
    app, ran = make_app()
    with TestClient(app) as c:
        pending = c.post(
            "/api/v1/execute",
            json={"action_type": "write", "target": "crm_prod"},
            headers=bearer("dev"),
        ).json()
        rid = pending["request_id"]
        token = AuditStore(db_url).approvals.token(rid)  # what the channel's button carries
        raw = b'{"user":  "U1", "verdict": "approve"}'  # odd spacing: bytes must be kept
        forged = c.post(f"/chat/callback/{token}", content=raw, headers={"x-signature": "0" * 64})
        assert forged.status_code == 401
        sig = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
        # Signed, but naming the bare id: a route's reference comes from outside, so only the
        # token (proof the sender was shown this request) counts.
        bare = c.post(f"/chat/callback/{rid}", content=raw, headers={"x-signature": sig})
        assert bare.status_code == 200 and bare.json()["accepted"] is False
        assert "token" in bare.json()["message"]
        r = c.post(f"/chat/callback/{token}", content=raw, headers={"x-signature": sig})
        assert r.status_code == 200 and r.json()["accepted"] is True
        assert channel.seen[-1].body == raw
        assert channel.seen[-1].params == {"rid": token}
        done = c.get(pending["status_url"] + "?wait=10", headers=bearer("dev")).json()
        assert (done["status"], done["approver"]) == ("success", "chat:U1")
    assert [a.target for a in ran.ran] == ["crm_prod"]
    assert "/chat/callback/{rid}" not in c.app.openapi_schema.paths  # type: ignore[operator]
