"""Policy versions in the audit database: every accepted policy, numbered, with who and when.

Why in the database: several server replicas (and ``aegis policy rollback`` in a terminal) must
agree on which policy is in force, and a version history is evidence beside the audit that
records each decision's ``policy_fingerprint``. Only a policy that loads is ever stored, so
the newest version is always one a process can switch to.

* ``aegis_policy_version`` — one row per version: ``version`` (1, 2, ...; gapless, assigned in
  the inserting transaction, a clash with a concurrent writer is retried), the YAML text as
  given, its fingerprint, ``author`` (``key:NAME``, ``cli:USER``, ``file:PATH``), ``source``
  (``api``, ``file``, ``rollback``, ``cli``), an optional note, and ``created_at``.

A rollback is a new version carrying an old one's text (``source='rollback'``,
``rolled_back_to``), so the history only grows and "what was in force at 14:02" stays a
lookup. ``VersionedPolicy`` is a policy source for ``Runtime`` that follows the newest
version; checking is one ``max(version)`` read, cheap enough to poll every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.policy import Policy
from aegis.errors import AuditError, PolicyError

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore

log = logging.getLogger("aegis.policy")

metadata = MetaData()

versions_table = Table(
    "aegis_policy_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("created_at", Float, nullable=False),
    Column("author", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("note", Text),
    Column("rolled_back_to", Integer),
    Column("fingerprint", String(128), nullable=False),
    Column("yaml", Text, nullable=False),
)

_HEAD = select(func.max(versions_table.c.version))


@attrs.frozen
class PolicyVersion:
    version: int
    created_at: float
    author: str
    source: str
    fingerprint: str
    yaml: str = attrs.field(repr=False)
    note: str | None = None
    rolled_back_to: int | None = None

    def load(self) -> Policy:
        """The version as a policy (its text loaded when it was stored, so this succeeds
        unless someone edited the table by hand)."""
        return Policy.from_yaml_string(self.yaml, source=f"policy version {self.version}")

    def to_dict(self, *, with_yaml: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "created_at": dt.datetime.fromtimestamp(self.created_at, dt.UTC).isoformat(
                timespec="seconds"
            ),
            "author": self.author,
            "source": self.source,
            "note": self.note,
            "rolled_back_to": self.rolled_back_to,
            "fingerprint": self.fingerprint,
        }
        if with_yaml:
            out["yaml"] = self.yaml
        return out


def _row(row: Any) -> PolicyVersion:
    m = row._mapping
    return PolicyVersion(
        version=int(m["version"]),
        created_at=float(m["created_at"]),
        author=str(m["author"]),
        source=str(m["source"]),
        fingerprint=str(m["fingerprint"]),
        yaml=str(m["yaml"]),
        note=m["note"],
        rolled_back_to=m["rolled_back_to"],
    )


class PolicyHistory:
    """The policy versions kept in one audit database (tables created on first use)."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._ready = False

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        store = self._store
        try:
            with store.read_lock():
                engine = store.engine
                if not self._ready:
                    from aegis.runtime.audit.opening import create_tables

                    create_tables(engine, tables=metadata)
                    self._ready = True
                with engine.begin() as conn:
                    yield conn
        except SQLAlchemyError as exc:
            raise AuditError(
                f"policy versions at {store.safe_url}: {str(exc).splitlines()[0]}"
            ) from exc

    # -- reading ---------------------------------------------------------------------------

    def head(self) -> int:
        """The newest version number (0 when there is none): one indexed read."""
        with self._tx() as conn:
            found = conn.execute(_HEAD).scalar()
        return int(found or 0)

    def get(self, version: int) -> PolicyVersion | None:
        with self._tx() as conn:
            row = conn.execute(
                select(versions_table).where(versions_table.c.version == version)
            ).first()
        return None if row is None else _row(row)

    def latest(self) -> PolicyVersion | None:
        with self._tx() as conn:
            row = conn.execute(
                select(versions_table).order_by(versions_table.c.version.desc()).limit(1)
            ).first()
        return None if row is None else _row(row)

    def list(self, *, limit: int = 100, before: int | None = None) -> list[PolicyVersion]:
        """Newest first; ``before`` pages back (versions lower than it)."""
        stmt = select(versions_table).order_by(versions_table.c.version.desc()).limit(limit)
        if before is not None:
            stmt = stmt.where(versions_table.c.version < before)
        with self._tx() as conn:
            return [_row(r) for r in conn.execute(stmt)]

    # -- writing ---------------------------------------------------------------------------

    def add(
        self,
        text: str,
        *,
        author: str,
        source: str = "api",
        note: str | None = None,
        rolled_back_to: int | None = None,
        policy: Policy | None = None,
    ) -> PolicyVersion:
        """Store ``text`` as the next version. ``PolicyError`` (nothing stored) if it does not
        load: a version that cannot be switched to never enters the history."""
        loaded = policy if policy is not None else Policy.from_yaml_string(text, source="policy")
        for attempt in range(10):
            try:
                with self._tx() as conn:
                    number = int(conn.execute(_HEAD).scalar() or 0) + 1
                    values = {
                        "version": number,
                        "created_at": time.time(),
                        "author": author,
                        "source": source,
                        "note": note,
                        "rolled_back_to": rolled_back_to,
                        "fingerprint": loaded.fingerprint,
                        "yaml": text,
                    }
                    conn.execute(insert(versions_table).values(**values))
                return _row(_Values(values))
            except AuditError as exc:
                # Another writer took the same number: read the head again and retry.
                if not isinstance(exc.__cause__, IntegrityError) or attempt == 9:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def rollback(self, version: int, *, author: str, note: str | None = None) -> PolicyVersion:
        """A new version with ``version``'s text. ``LookupError`` if there is no such version."""
        old = self.get(version)
        if old is None:
            raise LookupError(f"no policy version {version}")
        return self.add(
            old.yaml,
            author=author,
            source="rollback",
            note=note or f"rollback to version {version}",
            rolled_back_to=version,
        )

    def seed(self, text: str, *, path: str, policy: Policy | None = None) -> PolicyVersion:
        """The policy file a server starts with: stored as a new version unless the newest
        version already has its fingerprint, or the file is the one last seeded (so restarting
        with the same file keeps changes made since over the API, and an edited file wins)."""
        loaded = policy if policy is not None else Policy.from_yaml_string(text, source=path)
        latest = self.latest()
        if latest is not None:
            if latest.fingerprint == loaded.fingerprint:
                return latest
            with self._tx() as conn:
                row = conn.execute(
                    select(versions_table)
                    .where(versions_table.c.source == "file")
                    .order_by(versions_table.c.version.desc())
                    .limit(1)
                ).first()
            if row is not None and _row(row).fingerprint == loaded.fingerprint:
                return latest
        return self.add(text, author=f"file:{path}", source="file", policy=loaded)


class _Values:
    """A dict posing as a result row, for ``_row``."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values


class VersionedPolicy:
    """A policy source that follows the newest version in a ``PolicyHistory``.

    ``evaluate`` never touches the database: ``refresh`` (called by ``follow`` every
    ``interval`` seconds, and by whoever just stored a version) swaps in a newer version. A
    version that fails to load (edited by hand) is logged and skipped; the one in force stays.
    """

    def __init__(self, history: PolicyHistory, current: PolicyVersion, policy: Policy) -> None:
        self.history = history
        self._current = current
        self._policy = policy
        self._skipped: int = 0
        self.last_error: str | None = None

    @classmethod
    def open(cls, history: PolicyHistory, text: str, *, path: str) -> VersionedPolicy:
        """Seed the history with the file's text (see ``PolicyHistory.seed``) and follow it."""
        policy = Policy.from_yaml_string(text, source=path)
        seeded = history.seed(text, path=path, policy=policy)
        if seeded.fingerprint != policy.fingerprint:
            policy = seeded.load()
        source = cls(history, seeded, policy)
        source.refresh()
        return source

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def current(self) -> PolicyVersion:
        return self._current

    @property
    def version(self) -> int:
        return self._current.version

    @property
    def fingerprint(self) -> str:
        return self._policy.fingerprint

    def to_dict(self) -> dict[str, Any]:
        return self._policy.to_dict()

    def evaluate(self, action: Action, *, now: dt.datetime | None = None) -> PolicyDecision:
        return self._policy.evaluate(action, now=now)

    def refresh(self) -> bool:
        """Switch to the newest version if there is a newer one; True if it switched."""
        head = self.history.head()
        if head <= self._current.version or head == self._skipped:
            return False
        found = self.history.get(head)
        if found is None:
            return False
        try:
            policy = found.load()
        except PolicyError as exc:
            self._skipped = head
            self.last_error = f"policy version {head} does not load: {exc.issues[0]}"
            log.error("%s; keeping version %d", self.last_error, self._current.version)
            return False
        self._current, self._policy, self.last_error = found, policy, None
        log.info("policy version %d in force (%s)", found.version, found.author)
        return True

    async def follow(self, interval: float = 1.0) -> None:
        """Refresh forever (run as a task; cancel to stop). Errors are logged, never raised:
        an unreachable database keeps the version in force."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                log.exception("could not check for a newer policy version")
