"""LISTEN/NOTIFY between replicas on a real PostgreSQL: news sent by one replica's notifier
reaches another's, and an approval answered on replica B wakes replica A's waiter through it.

The wake latency with and without it is measured (printed, never asserted) by the slow test
``test_measure_wake_latency`` (``pytest -m "postgres and slow" -s``)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

import httpx
import pytest
from server_helpers import ServerProcess, bearer
from sqlalchemy import create_engine

from aegis.server.notify import Notifier, usable

pytestmark = pytest.mark.postgres


async def test_news_from_one_notifier_reaches_another(pg_url: str) -> None:
    engine = create_engine(pg_url)
    heard: list[str] = []
    got = asyncio.Event()

    def on_news(payload: str) -> None:
        heard.append(payload)
        got.set()

    listener = Notifier(pg_url, engine, on_news)
    sender = Notifier(pg_url, engine, lambda _: None)
    listener.start()
    try:
        assert usable(pg_url) and not usable("sqlite:///x.db")
        assert await asyncio.to_thread(listener.listening.wait, 20)
        await sender.send("approval:abc123")
        await asyncio.wait_for(got.wait(), 20)
        assert heard == ["approval:abc123"]
    finally:
        await asyncio.to_thread(listener.stop)
        engine.dispose()


def _wake_times(a: ServerProcess, b: ServerProcess, rounds: int) -> list[float]:
    """Seconds from the approval's answer on B to the action's result on A's long-poll."""
    times = []
    with (
        httpx.Client(base_url=a.url, headers=bearer("dev"), timeout=70) as ca,
        httpx.Client(base_url=b.url, headers=bearer("ops"), timeout=30) as cb,
    ):
        for i in range(rounds):
            body = {"action_type": "bulk_update", "target": f"crm{i}", "params": {"count": 500}}
            pending = ca.post("/api/v1/execute", json=body).json()
            result: dict = {}

            def poll(url: str = pending["status_url"], into: dict = result) -> None:
                into.update(ca.get(url, params={"wait": 30}).json())
                into["at"] = time.monotonic()

            waiter = threading.Thread(target=poll)
            waiter.start()
            time.sleep(0.3)  # the long-poll is waiting
            assert cb.post(f"/api/v1/approvals/{pending['request_id']}/approve").status_code == 200
            answered = time.monotonic()
            waiter.join(60)
            assert result["status"] == "success"
            times.append(result["at"] - answered)
    return times


def test_an_answer_on_b_wakes_a_waiter_on_a(replicas) -> None:
    start, _ = replicas
    assert len(_wake_times(start("a"), start("b"), 2)) == 2


@pytest.mark.slow
def test_measure_wake_latency(replicas) -> None:
    start, _ = replicas
    figures = {}
    for label, extra in (("notify", ()), ("polling", ("--no-notify",))):
        a, b = start(f"a-{label}", *extra), start(f"b-{label}", *extra)
        try:
            times = sorted(_wake_times(a, b, 20))
        finally:
            a.stop()
            b.stop()
        figures[label] = (statistics.median(times) * 1000, times[-1] * 1000)
    for label, (p50, worst) in figures.items():
        print(f"wake latency ({label}): p50 {p50:.1f} ms, max {worst:.1f} ms")
