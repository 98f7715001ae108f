"""The fast path in front of Litestar answers ``/execute`` and ``/evaluate`` exactly as the
Litestar routes do: each request below is sent once through it and once straight to the
routes (the same app, its fast path taken out), and the status, the JSON body and the headers
a caller acts on must be the same. The checks in front of both (key, scope, rate limit, body
limit) are the same function; the attacker's requests come first."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import TestClient
from server_helpers import bearer

from aegis.server.context import ServerConfig
from aegis.server.fastpath import FastPaths

READ = {"action_type": "read", "target": "crm"}
BULK = {"action_type": "bulk_update", "target": "crm", "params": {"count": 500}}
JSON = {"content-type": "application/json"}

EX, EV = "/api/v1/execute", "/api/v1/evaluate"


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


def _as(who: str) -> dict[str, str]:
    return {**JSON, **bearer(who)}


CASES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("no key", EX, JSON, _j(READ)),
    ("unknown key", EX, {**JSON, "authorization": "Bearer nope-0123456789abcdef"}, b"{}"),
    ("basic auth", EV, {**JSON, "authorization": "Basic ZGV2OmRldg=="}, b"{}"),
    ("no scope", EV, _as("bot"), _j(READ)),
    ("not json", EX, _as("dev"), b"{"),
    ("empty", EX, _as("dev"), b""),
    ("missing field", EX, _as("dev"), b'{"target": "crm"}'),
    ("unknown field", EX, _as("dev"), _j({**READ, "run_as": "root"})),
    ("wrong type", EX, _as("dev"), _j({**READ, "agent_id": 5})),
    ("empty type", EX, _as("dev"), _j({**READ, "action_type": ""})),
    ("a list", EX, _as("dev"), _j([READ])),
    ("too large", EX, _as("dev"), _j({**READ, "description": "x" * 5000})),
    ("auto", EX, _as("dev"), _j(READ)),
    ("bound agent", EX, _as("bot"), _j({**READ, "agent_id": "me"})),
    ("blocked", EX, _as("dev"), _j({"action_type": "delete", "target": "db"})),
    ("needs approval", EX, _as("dev"), _j(BULK)),
    ("text/plain", EX, {**_as("dev"), "content-type": "text/plain"}, _j(READ)),
    ("evaluate", EV, _as("dev"), _j({"action_type": "delete", "target": "db"})),
    ("evaluate list", EV, _as("dev"), _j([READ, BULK])),
    ("batch too large", EV, _as("dev"), _j([READ] * 4)),
    ("evaluate bad item", EV, _as("dev"), _j([READ, {"x": 1}])),
]

#: The requests the fast path leaves to Litestar's route (its validation explains them).
DELEGATED = {
    "not json", "empty", "missing field", "unknown field", "wrong type", "empty type", "a list",
    "too large", "evaluate bad item",
}  # fmt: skip

#: What differs between two runs of the same request (fresh ids), compared by presence only.
FRESH = ("execution_id", "status_url", "audit_id", "request_id", "approve_url", "expires_at")


def _seen(r: Any) -> tuple[int, Any, dict[str, str | None]]:
    body = r.json()
    if isinstance(body, dict):
        body = {k: (k in body and v is not None) if k in FRESH else v for k, v in body.items()}
    wanted = ("content-type", "retry-after", "www-authenticate")
    return r.status_code, body, {h: r.headers.get(h) for h in wanted}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_the_fast_path_answers_as_the_routes_do(make_app, case) -> None:
    name, path, headers, body = case
    app, _ = make_app(config=ServerConfig(max_body_bytes=2000, max_batch=3))
    fast = app.asgi_handler
    assert isinstance(fast, FastPaths)
    routes, handed = fast.inner, []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        handed.append(scope["path"])
        await routes(scope, receive, send)

    fast.inner = spy
    with TestClient(app, base_url="http://127.0.0.1") as c:
        through = c.post(path, content=body, headers=headers)
        app.asgi_handler = routes
        direct = c.post(path, content=body, headers=headers)
    assert _seen(through) == _seen(direct), (through.text, direct.text)
    assert bool(handed) == (name in DELEGATED)


def test_a_bad_body_handed_to_the_route_is_counted_once(make_app) -> None:
    """The rate limit allows one request per 10 s: an invalid body is checked by the fast path
    and explained by the route; counted twice, the route would answer 429 instead of 400."""
    app, ran = make_app(config=ServerConfig(rate_per_key=0.1))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        bad = c.post("/api/v1/execute", content=b'{"target": 1}', headers={**JSON, **bearer("dev")})
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"] == "invalid request"
        again = c.post("/api/v1/execute", json=READ, headers=bearer("dev"))
        assert again.status_code == 429, again.text
    assert ran.ran == []


def test_executed_through_the_fast_path_is_audited_once_each(make_app) -> None:
    app, ran = make_app()
    with TestClient(app, base_url="http://127.0.0.1") as c:
        answers = [c.post("/api/v1/execute", json=READ, headers=bearer("dev")) for _ in range(20)]
        assert {a.status_code for a in answers} == {200}
        records = c.get("/api/v1/audit", params={"limit": 100}, headers=bearer("dev")).json()
    ids = sorted(a.json()["audit_id"] for a in answers)
    assert sorted(r["id"] for r in records["records"]) == ids
    assert len(set(ids)) == 20 and len(ran.ran) == 20
