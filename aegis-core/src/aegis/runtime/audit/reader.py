"""The read side of the audit store: records by filter, per-rule stats, chain verification.

``AuditStore`` is an ``AuditReader`` with a writer: reading needs only the URL and an engine
(created on first use), so the CLI can read, tail or verify a trail that another process is
writing without starting a writer of its own. The SQL is in ``audit.query``; this is the
store's face for it, with every database error turned into one ``AuditError`` line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from sqlalchemy import Engine, inspect, make_url
from sqlalchemy.exc import SQLAlchemyError

from aegis.errors import AuditError
from aegis.runtime.audit import query as audit_query
from aegis.runtime.audit.chain import VerifyReport
from aegis.runtime.audit.opening import make_engine
from aegis.runtime.audit.query import AuditFilter, Order, RuleStats, Since
from aegis.runtime.audit.record import AuditRecord
from aegis.runtime.audit.url import missing_driver_message
from aegis.runtime.audit.writer import one_line

Durability = Literal["full", "normal"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_FILTER_ALIASES = {"session_id": "session", "agent_id": "agent"}


class AuditReader:
    """Reads one trail (sync, for the CLI and reports). The subclass sets the attributes."""

    url: str
    durability: Durability
    busy_timeout: float
    _engine: Engine | None
    _memory: bool

    def query(
        self,
        *,
        session: str | None = None,
        action_type: str | None = None,
        risk_level: Any = None,
        result: Any = None,
        agent: str | None = None,
        decision: Any = None,
        matched_rule: str | None = None,
        since: Since | None = None,
        until: Since | None = None,
        after_id: int | None = None,
        limit: int | None = 100,
        order: Order = "asc",
    ) -> list[AuditRecord]:
        """Records matching every given filter, by id (``order="desc"`` for newest first).

        ``action_type`` accepts globs (``delete*``); ``since``/``until`` accept a datetime, a
        date, an ISO string or a timedelta (that long ago); ``after_id`` is for tailing.
        """
        flt = AuditFilter(
            session,
            action_type,
            risk_level,
            result,
            agent,
            decision,
            matched_rule,
            since,
            until,
            after_id,
        )
        with self.reading() as engine:
            return audit_query.query(engine, flt, limit=limit, order=order)

    def count(self, **filters: Any) -> int:
        """Number of records matching the same filters as ``query``."""
        return self.read(audit_query.count, AuditFilter(**_filter_names(filters)))

    def stats(self, **filters: Any) -> list[RuleStats]:
        """Per matched rule: total, counts by result and by decision (busiest rule first)."""
        return self.read(audit_query.stats, AuditFilter(**_filter_names(filters)))

    def session_ids(self, prefix: str = "", *, limit: int | None = None) -> list[str]:
        """Distinct recorded session ids starting with ``prefix``, sorted (the CLI resolves a
        shortened id from a table with it)."""
        return self.read(audit_query.session_ids, prefix, limit=limit)

    def get(self, audit_id: int) -> AuditRecord | None:
        found = self.query(after_id=audit_id - 1, limit=1)
        return found[0] if found and found[0].id == audit_id else None

    def verify(self) -> VerifyReport:
        """Check the hash chain; the report names every edited, deleted or inserted row."""
        return self.read(audit_query.verify)

    # -- reads of one's own (evidence, shadow reports, delegation chains, ...) ---------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[Engine]:
        """The engine, for a read-only query this class has no method for.

        Holds what a read must hold (an in-memory database's one connection), refuses a URL
        with no trail at all, and turns any database error inside the block into one
        ``AuditError`` line naming the store (password hidden), so callers need no
        SQLAlchemy error handling of their own. Do not keep the engine past the block.
        """
        try:
            with self.read_lock():
                engine = self._get_engine()
                if not inspect(engine).has_table("aegis_audit"):
                    raise AuditError(f"no audit trail at {self.safe_url}")
                yield engine
        except SQLAlchemyError as exc:
            raise AuditError(
                f"cannot read the audit store at {self.safe_url}: {one_line(exc)}"
            ) from exc

    def read(
        self, fn: Callable[Concatenate[Engine, _P], _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """``fn(engine, *args, **kwargs)`` inside ``reading()``: ``store.read(make_checkpoint,
        signer)``, ``store.read(shadow_report, since=start)``."""
        with self.reading() as engine:
            return fn(engine, *args, **kwargs)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, created on first use (``AuditError`` when the URL's driver is
        missing). For modules that keep their own tables in the audit database; take
        ``read_lock()`` around every use, or use ``reading()``."""
        return self._get_engine()

    def read_lock(self) -> contextlib.AbstractContextManager[Any]:
        """What a read must hold: nothing, except for an in-memory database, whose one
        connection the store shares with its writer."""
        return self._read_lock()

    @property
    def in_memory(self) -> bool:
        """An in-memory SQLite database: one connection, shared with the writer (known once
        the engine exists)."""
        self._get_engine()
        return self._memory

    @property
    def safe_url(self) -> str:
        """The URL for messages: password hidden, or only the scheme when it does not parse."""
        return self._safe_url()

    # -- plumbing (subclass hooks) ---------------------------------------------------------

    def _read_lock(self) -> contextlib.AbstractContextManager[Any]:
        """What a read holds: nothing here; the store shares an in-memory database's one
        connection with its writer and overrides this."""
        return contextlib.nullcontext()

    def _get_engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine, self._memory = make_engine(
                    self.url, self.busy_timeout, self.durability
                )
            except ImportError as exc:  # the URL's driver is not installed
                raise AuditError(
                    f"cannot open the audit store at {self._safe_url()}: "
                    f"{missing_driver_message(self.url, exc)}"
                ) from exc
            except SQLAlchemyError as exc:  # no such dialect
                raise AuditError(
                    f"cannot open the audit store at {self._safe_url()}: {one_line(exc)}"
                ) from exc
        return self._engine

    def _safe_url(self) -> str:
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # not a URL SQLAlchemy can parse: show no part that may be secret
            return self.url.partition("://")[0] + "://..."


def _filter_names(filters: dict[str, Any]) -> dict[str, Any]:
    return {_FILTER_ALIASES.get(k, k): v for k, v in filters.items()}
