"""The per-key rate limit, counted in the audit database so replicas share it.

Fixed windows: at most ``limit`` requests per key per window of ``window`` seconds, over all
replicas together (``rate`` 5/s is 5 per 1 s window; 0.1/s is 1 per 10 s). One statement per
request: an upsert that adds one to the key's counter for the current window and returns it
(``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, atomic on PostgreSQL and SQLite), so two
replicas cannot both take the last request of a window. Off (no database work) at rate 0.

Fail closed: a counter that cannot be read (a database error, or no answer within
``READ_TIMEOUT``) raises ``RateUnknown``, and the request is refused with 503 before anything is
decided or run. Otherwise whoever can make the counter unreadable (fill the disk, hold a lock,
exhaust the pool) would lift every key's limit at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from sqlalchemy import Column, Integer, MetaData, String, Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

log = logging.getLogger("aegis.server")

#: Seconds to wait for the counter; a slower database counts as unreadable.
READ_TIMEOUT = 2.0


class RateUnknown(Exception):
    """The key's counter could not be read: the request must be refused (503)."""


_meta = MetaData()
rate_table = Table(
    "aegis_server_rate",
    _meta,
    Column("key_name", String(64), primary_key=True),
    Column("window", Integer, primary_key=True, autoincrement=False),
    Column("hits", Integer, nullable=False),
)


class SharedRateLimiter:
    def __init__(self, engine: Engine | None, per_second: float) -> None:
        self.rate = per_second
        self.window = max(1.0, 1.0 / per_second) if per_second > 0 else 1.0
        self.limit = max(1, math.floor(per_second * self.window)) if per_second > 0 else 0
        self.engine = engine
        if engine is not None and per_second > 0:
            _meta.create_all(engine)
        self._purged = 0

    def _hit(self, name: str, now: float) -> int:
        assert self.engine is not None
        window = int(now // self.window)
        module = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = module.insert(rate_table).values(key_name=name, window=window, hits=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[rate_table.c.key_name, rate_table.c.window],
            set_={"hits": rate_table.c.hits + 1},
        ).returning(rate_table.c.hits)
        with self.engine.begin() as conn:
            hits = int(conn.execute(stmt).scalar_one())
            if window > self._purged:  # windows before the last are never read again
                self._purged = window
                conn.execute(delete(rate_table).where(rate_table.c.window < window - 1))
        return hits

    async def allow(self, name: str, now: float | None = None) -> bool:
        """Whether ``name`` may make one more request now; ``RateUnknown`` if nobody knows."""
        if self.rate <= 0 or self.engine is None:
            return True
        at = time.time() if now is None else now
        try:
            hits = await asyncio.wait_for(asyncio.to_thread(self._hit, name, at), READ_TIMEOUT)
        except Exception as exc:  # TimeoutError included
            log.error("rate limit counter unreadable (%s); request refused", type(exc).__name__)
            raise RateUnknown(type(exc).__name__) from exc
        return hits <= self.limit
