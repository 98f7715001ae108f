"""Closing requests nobody waits for any more: ``abandoned`` (the waiter died) or ``expired``.

A waiting process refreshes its requests' heartbeat every ``HEARTBEAT_EVERY`` seconds. On this
machine the process table says at once whether a request's owner is gone
(``audit.interrupted.owner_gone``: not running, a zombie, a reused pid, an earlier boot); for
an owner on another host (or container) only a heartbeat older than ``STALE_AFTER`` does.
An abandoned request is never executed later by surprise: only ``ApprovalBook.adopt`` can
hand it to a new waiter, for the very action it was made for.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aegis.runtime.approval.record import ABANDONED, EXPIRED, PENDING, ApprovalRequest
from aegis.runtime.audit.interrupted import owner_gone

if TYPE_CHECKING:
    from aegis.runtime.approval.store import ApprovalBook

HEARTBEAT_EVERY = 5.0
STALE_AFTER = 60.0


def reap(book: ApprovalBook, now: float | None = None) -> list[tuple[str, str]]:
    """Settle ``book``'s pending requests whose owner is gone (``abandoned``) or that are well
    past their window (``expired``: their owner should have expired them)."""
    now = time.time() if now is None else now
    changed: list[tuple[str, str]] = []
    for request in book.list(state=PENDING, limit=None):
        why = abandoned_because(request, now)
        if why is not None:
            if book.settle(request.id, ABANDONED, why):
                changed.append((request.id, ABANDONED))
        elif now > request.expires_at + STALE_AFTER:
            outcome = "expired: nobody answered, and its owner did not close it"
            if book.settle(request.id, EXPIRED, outcome):
                changed.append((request.id, EXPIRED))
    return changed


def abandoned_because(request: ApprovalRequest, now: float) -> str | None:
    """Why ``request``'s owner is presumed dead, or None if it may still be waiting."""
    owner = f"pid {request.owner_pid} on {request.owner_host}"
    gone = owner_gone(request.owner_started)
    if gone is True:
        return f"abandoned: its owner ({owner}) is no longer running"
    if gone is None and now - request.heartbeat_at > STALE_AFTER:
        return f"abandoned: no heartbeat from its owner ({owner}) for {STALE_AFTER:g} s"
    return None
