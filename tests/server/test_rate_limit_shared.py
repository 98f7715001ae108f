"""The per-key rate limit is counted in the database: two apps on one SQLite file (two
replicas) share each key's allowance; other keys are untouched; a new window allows again."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient
from server_helpers import bearer

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
