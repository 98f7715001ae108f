"""Checkpoints made by the store itself, every N outcomes or T seconds.

::

    schedule = CheckpointSchedule(key="aegis.key", directory=Path("/mnt/worm/checkpoints"),
                                  every_records=1000, every_seconds=60)
    async with AuditStore(url, checkpoints=schedule) as store: ...

A background thread keeps the outcome tree in memory and extends it from the tail of the table
(``TrailTree``), so a checkpoint of a million-record store costs what was added since the last
one, not a million reads; the tree is built once, when the store opens. Each checkpoint goes to
``directory`` (one file each) and/or ``publish`` (any callable: a sink, a transparency service).
One more is made when the store closes if anything changed, so a clean shutdown always ends
checkpointed.

Checkpointing is evidence after the fact, not a gate: a failure is logged and retried at the next
trigger (``last_error`` says why) and never stops an action. What *is* a gate, the record itself,
is already durable before ``run_one`` returns.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Engine

from aegis.errors import AuditError
from aegis.runtime.audit.checkpoint import (
    Checkpoint,
    TrailTree,
    build_checkpoint,
    read_head,
    snapshot,
    write_checkpoint,
)
from aegis.runtime.audit.keys import load_private_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger("aegis.audit.checkpoints")


@attrs.frozen
class CheckpointSchedule:
    """When and where the store signs checkpoints. At least one trigger and one destination."""

    key: Any  # a path to a PEM private key, or an Ed25519PrivateKey
    directory: Path | None = None
    publish: Callable[[Checkpoint], None] | None = None
    every_records: int | None = None
    every_seconds: float | None = None
    on_close: bool = True

    def __attrs_post_init__(self) -> None:
        if self.directory is None and self.publish is None:
            raise ValueError("CheckpointSchedule needs a directory or a publish callable")
        if self.every_records is None and self.every_seconds is None and not self.on_close:
            raise ValueError("CheckpointSchedule needs every_records, every_seconds or on_close")
        if self.every_records is not None and self.every_records < 1:
            raise ValueError("every_records must be at least 1")
        if self.every_seconds is not None and not self.every_seconds > 0:
            raise ValueError("every_seconds must be positive")

    def private_key(self) -> Ed25519PrivateKey:
        if isinstance(self.key, str | Path):
            return load_private_key(self.key)
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not isinstance(self.key, Ed25519PrivateKey):
            raise AuditError("CheckpointSchedule.key must be a key file path or an Ed25519 key")
        return self.key


class Checkpointer:
    """The thread that applies a ``CheckpointSchedule`` to one open store."""

    def __init__(
        self,
        schedule: CheckpointSchedule,
        engine: Engine,
        *,
        read_lock: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self.schedule = schedule
        self._key = schedule.private_key()  # a bad key fails the store's open, loudly
        if schedule.directory is not None:
            try:
                schedule.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise AuditError(
                    f"checkpoint directory {schedule.directory}: {exc.strerror or exc}"
                ) from None
        self._engine = engine
        self._read_lock = read_lock
        self._tree = TrailTree()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signed: tuple[int, int] | None = None  # (size, finals) of the last checkpoint
        self._signed_at = time.monotonic()
        self.latest: Checkpoint | None = None
        self.made = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aegis-audit-checkpoints")
        self._thread.daemon = True
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
        if self.schedule.on_close:
            self._attempt(force=True)

    def _run(self) -> None:
        poll = min(self.schedule.every_seconds or 1.0, 1.0)
        while not self._stop.is_set():
            self._wake.wait(poll)
            self._wake.clear()
            if not self._stop.is_set():
                self._attempt(force=False)

    def _attempt(self, *, force: bool) -> None:
        try:
            self.checkpoint_if_due(force=force)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("audit checkpoint failed (will retry): %s", self.last_error)

    def checkpoint_if_due(self, *, force: bool = False) -> Checkpoint | None:
        """Sign a checkpoint if a trigger fired (or ``force`` and anything changed)."""
        sched = self.schedule
        with self._read_lock(), snapshot(self._engine) as conn:
            size, _hash, finals = read_head(conn)
            last_size, last_finals = self._signed or (-1, -1)
            changed = (size, finals) != (last_size, last_finals)
            if not changed:
                return None
            due = force
            if sched.every_records is not None:
                due |= finals - max(last_finals, 0) >= sched.every_records
            if sched.every_seconds is not None:
                due |= time.monotonic() - self._signed_at >= sched.every_seconds
            if not due:
                return None
            cp = build_checkpoint(conn, self._tree, self._key)
        self._publish(cp)
        self._signed = (cp.size, cp.finals)
        self._signed_at = time.monotonic()
        self.latest = cp
        self.made += 1
        self.last_error = None
        return cp

    def _publish(self, cp: Checkpoint) -> None:
        if self.schedule.directory is not None:
            write_checkpoint(cp, self.schedule.directory)
        if self.schedule.publish is not None:
            self.schedule.publish(cp)
