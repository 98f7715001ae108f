"""``example_memory``: an audit sink that keeps what it was sent, so a test can look.

Written against the sink contract only (an object with ``emit(records)``); the store feeds it
from its shipper thread after commit, hence the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any


class MemorySink:
    def __init__(self, *, name: str = "example_memory") -> None:
        self.name = name
        self.records: list[Any] = []
        self.closed = False
        self._lock = threading.Lock()

    def emit(self, records: Sequence[Any]) -> None:
        with self._lock:
            self.records.extend(records)

    def close(self) -> None:
        self.closed = True
