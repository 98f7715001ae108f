"""Links from approval requests to the audit records of their actions, written later.

The link (``aegis_approval_request.audit_id``) is a pointer for people reading a request: the
request with its answers, and the action's record, are each complete without it. Giving it a
commit of its own cost every approved action a transaction, so a link waits here and is
written inside this process's next book write (usually the next request), by any read of
requests here, at the latest about a second later by a timer, or when the store closes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aegis.runtime.approval.transactions import BookTransactions

log = logging.getLogger("aegis.approvals")


class DeferredLinks:
    """The (request id, audit id) links of one book not written yet."""

    def __init__(self, book: BookTransactions) -> None:
        self._book = book
        #: The queued links; a book write checks it (a list, not a method: it is on every write).
        self.queue: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # a flush is due on it

    def add(self, rid: str, audit_id: int) -> None:
        """Queue one link; outside an event loop it is written at once."""
        with self._lock:
            self.queue.append((rid, audit_id))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_loop is not loop:  # one timer per loop and second, not one per link
            self._flush_loop = loop
            loop.call_later(1.0, self._flush_later, loop)

    def _flush_later(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_loop = None
        if not self.queue:
            return
        if self._book.flush_links_inline():
            return  # else busy: a worker thread waits for it
        future = loop.run_in_executor(None, self.flush)
        future.add_done_callback(_log_link_failure)

    def flush(self) -> None:
        """Write every queued link now (in a book write of its own)."""
        if self.queue:
            with self._book._write():
                pass  # a book write writes the queued links first

    def write(self, cur: Any, sql: dict[str, str]) -> None:
        """Write the queued links inside the caller's transaction (kept if it rolls back)."""
        with self._lock:
            links, self.queue = self.queue, []
        try:
            cur.executemany(sql["link"], [(aid, rid) for rid, aid in links])
        except BaseException:
            with self._lock:
                self.queue[:0] = links  # rolled back with the transaction: keep them
            raise


def _log_link_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("could not link approval requests to their records: %s", future.exception())
