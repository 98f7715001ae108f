"""The per-key rate limit is counted in the database: two apps on one SQLite file (two
replicas) share each key's allowance; other keys are untouched; a new window allows again;
a counter that cannot be read refuses (fails closed)."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient
from server_helpers import bearer
from sqlalchemy import text

from aegis.server.context import ServerConfig
from aegis.server.ratelimit import SharedRateLimiter

READ = {"action_type": "read", "target": "x"}


def test_two_replicas_share_one_allowance(make_app) -> None:
    config = ServerConfig(rate_per_key=0.001)  # one request per key per 1000 s window
    (a, _), (b, _) = make_app(config=config), make_app(config=config)
    with TestClient(a) as ca, TestClient(b) as cb:
        first = ca.post("/api/v1/evaluate", json=READ, headers=bearer("dev"))
        second = cb.post("/api/v1/evaluate", json=READ, headers=bearer("dev"))
        other = cb.post("/api/v1/evaluate", json=READ, headers=bearer("root"))
    assert first.status_code == 200
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert second.json()["error"] == "rate limited"
    assert other.status_code == 200


async def test_windows_count_per_key_and_reset(make_app) -> None:
    app, _ = make_app(config=ServerConfig(rate_per_key=3))
    limiter: SharedRateLimiter = app.state.aegis.limiter
    assert (limiter.window, limiter.limit) == (1.0, 3)
    seen = [await limiter.allow("k", now=100.2) for _ in range(4)]
    assert seen == [True, True, True, False]
    assert await limiter.allow("other", now=100.5) is True
    assert await limiter.allow("k", now=101.0) is True  # the next window


@pytest.mark.postgres
async def test_the_upsert_counts_on_postgresql(pg_url: str) -> None:
    from sqlalchemy import create_engine

    engines = [create_engine(pg_url), create_engine(pg_url)]  # two replicas' pools
    try:
        a, b = (SharedRateLimiter(e, 2) for e in engines)
        seen = [await limiter.allow("pg-key", now=500.0) for limiter in (a, b, a, b)]
        assert seen == [True, True, False, False]
        assert await b.allow("pg-key", now=501.0) is True
    finally:
        for e in engines:
            e.dispose()


def test_an_unreadable_counter_refuses_every_keyed_request_and_runs_nothing(make_app) -> None:
    """The attacker's case: anything that makes the counter unreadable (the table dropped, a
    database that errors or hangs) must not lift the limit. Fail closed: 503 with the error
    shape and a Retry-After, nothing decided, run or recorded."""
    app, recorder = make_app(config=ServerConfig(rate_per_key=1000))
    with TestClient(app) as c:
        ctx = app.state.aegis
        assert c.post("/api/v1/execute", json=READ, headers=bearer("dev")).status_code == 200
        with ctx.limiter.engine.begin() as conn:
            conn.execute(text("DROP TABLE aegis_server_rate"))
        refused = [
            c.post("/api/v1/execute", json=READ, headers=bearer("dev")),
            c.post("/api/v1/evaluate", json=READ, headers=bearer("dev")),
            c.get("/api/v1/audit", headers=bearer("root")),
        ]
        records = ctx.store.query()
        health = c.get("/health")
    for r in refused:
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "rate limit unavailable"
        assert int(r.headers["retry-after"]) >= 1
    assert len(recorder.ran) == 1  # the first, before the table went
    assert len(records) == 1
    assert health.status_code == 200  # no key, no limit: the process still says it is alive


def test_a_counter_held_by_a_lock_is_unreadable_too(make_app, db_url: str) -> None:
    """Holding the database's write lock stalls the counter: after ``READ_TIMEOUT`` the
    request is refused, not waved through."""
    import sqlite3

    app, recorder = make_app(config=ServerConfig(rate_per_key=1000))
    with TestClient(app) as c:
        holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            refused = c.post("/api/v1/execute", json=READ, headers=bearer("dev"))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert recorder.ran == []
