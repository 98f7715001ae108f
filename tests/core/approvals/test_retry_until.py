"""``approval.retry.until``: the one retry loop every channel's posting goes through."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from aegis.runtime.approval import retry
from aegis.runtime.approval.retry import TryAgain, until

log = logging.getLogger("test.retry")


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays ``until`` waited, without waiting them (the clock moves by them)."""
    waited: list[float] = []
    clock = [time.time()]

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(retry.asyncio, "sleep", sleep)
    monkeypatch.setattr(retry.time, "time", lambda: clock[0])
    return waited


def failing(times: int, after: float = 0.0, result: Any = "sent") -> Any:
    calls = [0]

    async def attempt() -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise TryAgain(f"HTTP 503 (try {calls[0]})", after)
        return result

    attempt.calls = calls  # type: ignore[attr-defined]
    return attempt


async def test_transient_failures_are_retried_with_doubling_delays(slept: list[float]) -> None:
    attempt = failing(4)
    assert await until(attempt, time.time() + 100, "test", log) == "sent"
    assert slept == [0.5, 1.0, 2.0, 4.0]


async def test_retry_after_is_honoured_but_capped(slept: list[float]) -> None:
    assert await until(failing(1, after=7.0), time.time() + 100, "test", log) == "sent"
    assert await until(failing(1, after=10_000.0), time.time() + 1000, "test", log) == "sent"
    assert slept == [7.0, retry.MAX_RETRY_AFTER]


async def test_it_gives_up_rather_than_try_after_the_deadline(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    start = time.time()
    attempt = failing(1000)
    assert await until(attempt, start + 10, "test channel", log) is None
    assert sum(slept) < 10 and attempt.calls[0] == len(slept) + 1
    assert "test channel gave up: HTTP 503" in caplog.text


async def test_a_refusal_for_good_is_the_attempts_answer(slept: list[float]) -> None:
    assert await until(failing(0, result=None), time.time() + 100, "test", log) is None
    assert slept == []


async def test_other_errors_are_the_callers(slept: list[float]) -> None:
    async def attempt() -> None:
        raise ValueError("a bug, not the network")

    with pytest.raises(ValueError):
        await until(attempt, time.time() + 100, "test", log)
