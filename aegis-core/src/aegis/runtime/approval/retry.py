"""``until``: try a channel's call again, with backoff, until the request's deadline.

Every channel posts to a service that is sometimes down or busy (429 with Retry-After, 5xx,
a dropped connection). Retrying past the request's expiry is pointless (nobody can answer
it then) and giving up early leaves an approver unasked, so each channel retries until a
deadline; this is that loop, once. The channel's own code says only what is transient: it
raises ``TryAgain`` for that, and returns (or returns None after logging) for anything else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
#: A Retry-After longer than this is taken as this (a wrong header must not stall a channel).
MAX_RETRY_AFTER = 60.0


class TryAgain(Exception):
    """A transient failure: ``until`` tries again, after at least ``after`` seconds."""

    def __init__(self, why: str, after: float = 0.0) -> None:
        super().__init__(why)
        self.why = why
        self.after = after


async def until(
    attempt: Callable[[], Awaitable[T]], deadline: float, what: str, log: logging.Logger
) -> T | None:
    """``await attempt()`` until it returns, retrying each ``TryAgain`` with doubling delays
    (0.5 s up to 30 s, never shorter than its ``after``); None once the next try would come
    after ``deadline`` (a ``time.time()``). Other exceptions are the caller's."""
    delay = FIRST_DELAY
    while True:
        try:
            return await attempt()
        except TryAgain as exc:
            why = exc.why
            delay = max(delay, min(exc.after, MAX_RETRY_AFTER))
        if time.time() + delay >= deadline:
            log.warning("%s gave up: %s", what, why)
            return None
        log.info("%s failed (%s); again in %.1f s", what, why, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)
