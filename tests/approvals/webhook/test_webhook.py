"""The webhook channel against a real local HTTP server (httpx client, signed both ways)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aegis.approvals.webhook import CALLBACK_PATH, WebhookChannel, callback, sign, verify

from aegis import Policy, Runtime
from aegis.core.result import ResultStatus
from aegis.http import HttpRequest, RouteContext
from aegis.runtime.audit import AuditStore
from plugin_helpers import PAY, Recorder
from plugin_helpers import payment_policy as policy

SECRET = b"s3cret-s3cret-s3cret-s3cret"


Reply = Callable[[dict[str, Any]], tuple[int, dict[str, str], bytes]]


class StandIn:
    """Your approval service: records what it got, answers with ``reply(message)``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.reply: Reply = lambda message: (202, {}, b"")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if verify(SECRET, body, dict(self.headers.items())):
                    outer.bad_signatures += 1
                message = json.loads(body)
                outer.received.append(message)
                status, headers, payload = outer.reply(message)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/aegis"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests(self) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == "approval_request"]


def signed(answer: dict[str, Any], *, secret: bytes = SECRET, at: int | None = None) -> Any:
    body = json.dumps(answer).encode()
    return 200, {"Content-Type": "application/json", **sign(secret, body, at)}, body


@pytest.fixture(autouse=True)
def _callback_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `aegis serve` would have in its environment for the callback route."""
    monkeypatch.setenv("AEGIS_WEBHOOK_SECRET", SECRET.decode())


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    yield server
    server.server.shutdown()


async def run(store: AuditStore, stand_in: StandIn, pol: Policy, **kw: Any) -> tuple[Any, Recorder]:
    executor = Recorder()
    channel = WebhookChannel(stand_in.url, SECRET)
    async with Runtime(
        executor=executor, policy=pol, approval_handler=channel, audit=store, **kw
    ) as rt:
        result = await rt.run_one(PAY)
    return result, executor


async def test_a_signed_immediate_approval_runs_and_secrets_stay_home(
    store: AuditStore, stand_in: StandIn
) -> None:
    stand_in.reply = lambda m: signed(
        {"token": m["token"], "verdict": "approve", "responder": "alice", "reason": "ok"}
    )
    result, executor = await run(store, stand_in, policy())
    assert result.ok and len(executor.ran) == 1
    (sent,) = stand_in.requests()
    assert sent["request"]["params"]["api_key"] == "[REDACTED]" and stand_in.bad_signatures == 0
    assert sent["request"]["risk_level"] == "high" and sent["request"]["matched_rule"]
    (rec,) = store.query(limit=None)
    assert rec.approver == "webhook:alice"
    for _ in range(50):  # the settled notice goes out in the background
        if any(m["type"] == "approval_settled" for m in stand_in.received):
            break
        await asyncio.sleep(0.05)
    settled = [m for m in stand_in.received if m["type"] == "approval_settled"]
    assert settled and settled[0]["request"]["state"] == "approved"


async def test_deny_with_a_reason_reaches_the_caller(store: AuditStore, stand_in: StandIn) -> None:
    stand_in.reply = lambda m: signed(
        {"token": m["token"], "verdict": "deny", "responder": "bob", "reason": "wrong account"}
    )
    result, executor = await run(store, stand_in, policy())
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.reason == "denied: wrong account"


@pytest.mark.parametrize(
    "forge",
    [
        lambda m: signed({"token": m["token"], "verdict": "approve"}, secret=b"x" * 27),
        lambda m: signed({"token": m["token"], "verdict": "approve"}, at=int(time.time()) - 900),
        lambda m: (200, {}, json.dumps({"token": m["token"], "verdict": "approve"}).encode()),
    ],
    ids=["wrong-secret", "stale", "unsigned"],
)
async def test_forged_stale_or_unsigned_answers_do_not_count(
    store: AuditStore, stand_in: StandIn, forge: Reply
) -> None:
    stand_in.reply = forge
    result, executor = await run(store, stand_in, policy(), approval_timeout=0.5)
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    assert result.approval is not None and result.approval.timed_out


async def test_a_later_signed_callback_settles_and_a_replay_is_refused(
    store: AuditStore, stand_in: StandIn
) -> None:
    tokens: list[str] = []

    def later(message: dict[str, Any]) -> Any:
        tokens.append(message["token"])
        return 202, {}, b""

    stand_in.reply = later
    context = RouteContext(store)
    task = asyncio.ensure_future(run(store, stand_in, policy()))
    for _ in range(200):
        if tokens:
            break
        await asyncio.sleep(0.02)
    body = json.dumps(
        {"token": tokens[0], "verdict": "approve", "responder": "carol", "edits": {"amount": 10}}
    ).encode()

    def call(payload: bytes, headers: dict[str, str]) -> Any:
        return callback(HttpRequest("POST", CALLBACK_PATH, headers, {}, payload, context=context))

    forged = await call(body, sign(b"y" * 27, body))
    assert forged.status == 401
    good_headers = sign(SECRET, body)
    accepted = await call(body, good_headers)
    assert accepted.status == 200, accepted.body
    result, executor = await task
    assert result.ok and executor.ran[0].params["amount"] == 10
    replay = await call(body, good_headers)
    assert replay.status == 409 and b"already approved" in replay.body


async def test_an_endpoint_that_stays_down_means_denied(
    store: AuditStore, stand_in: StandIn
) -> None:
    stand_in.reply = lambda m: (503, {}, b"down")
    result, executor = await run(store, stand_in, policy(), approval_timeout=1.5)
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    assert len(stand_in.requests()) >= 2  # it retried


async def test_429_retry_after_is_honoured_then_the_answer_counts(
    store: AuditStore, stand_in: StandIn
) -> None:
    calls: list[float] = []

    def limited(message: dict[str, Any]) -> Any:
        if message["type"] != "approval_request":
            return 200, {}, b""
        calls.append(time.monotonic())
        if len(calls) == 1:
            return 429, {"Retry-After": "1"}, b""
        return signed({"token": message["token"], "verdict": "approve", "responder": "dana"})

    stand_in.reply = limited
    result, _ = await run(store, stand_in, policy())
    assert result.ok and len(calls) == 2 and calls[1] - calls[0] >= 0.9


async def test_unauthorised_responders_are_refused_and_audited(
    store: AuditStore, stand_in: StandIn
) -> None:
    stand_in.reply = lambda m: signed(
        {"token": m["token"], "verdict": "approve", "responder": "eve"}
    )
    result, executor = await run(store, stand_in, policy('["webhook:alice"]'), approval_timeout=0.5)
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    (req,) = store.approvals.list(limit=None)
    assert [(a.responder, a.accepted) for a in req.answers] == [("webhook:eve", False)]


async def test_quorum_of_two_across_two_users(store: AuditStore, stand_in: StandIn) -> None:
    tokens: list[str] = []
    stand_in.reply = lambda m: (tokens.append(m["token"]), (202, {}, b""))[1]  # type: ignore[func-returns-value]
    context = RouteContext(store)
    task = asyncio.ensure_future(run(store, stand_in, policy('{allow: ["webhook:*"], quorum: 2}')))
    for _ in range(200):
        if tokens:
            break
        await asyncio.sleep(0.02)
    for who in ("alice", "bob"):
        body = json.dumps({"token": tokens[0], "verdict": "approve", "responder": who}).encode()
        response = await callback(
            HttpRequest("POST", CALLBACK_PATH, sign(SECRET, body), {}, body, context=context)
        )
        assert response.status == 200
    result, executor = await task
    assert result.ok and len(executor.ran) == 1


def test_the_channel_is_registered() -> None:
    from aegis import plugins

    registry = plugins.get_registry()
    assert registry.get("approval_handlers", "webhook") is not None
    assert registry.get("routes", CALLBACK_PATH) is not None


@pytest.mark.parametrize("edits", [["amount", 1], "amount=1", 5])
async def test_an_approval_with_edits_that_are_not_an_object_does_not_run_unedited(
    store: AuditStore, stand_in: StandIn, edits: Any
) -> None:
    """The approver asked for a change the channel cannot read: running the action as it was
    would be approving something they did not approve. The answer is refused and stored."""
    stand_in.reply = lambda m: signed(
        {"token": m["token"], "verdict": "approve", "responder": "alice", "edits": edits}
    )
    result, executor = await run(store, stand_in, policy(), approval_timeout=0.5)
    assert executor.ran == [] and result.status is ResultStatus.DENIED
    (request,) = store.approvals.list(limit=None)
    answers = store.approvals.get(request.id).answers
    assert answers and not any(a.accepted for a in answers)
    assert "edits" in (answers[0].note or "")
