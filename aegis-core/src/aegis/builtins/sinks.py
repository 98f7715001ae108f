"""Built-in audit sinks: JSON Lines file, Python logging, webhook.

Registered through ``aegis_register_audit_sinks`` like any plugin's sinks. Each is fed by the
store's shipper thread (``aegis.runtime.audit.ship``), so blocking I/O here is fine: it never
sits on an action's path, and raising means "retry this batch later", never "drop it".
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.hookspecs import Register, hookimpl

if TYPE_CHECKING:  # keep plugin loading free of SQLAlchemy imports
    from aegis.runtime.audit.record import AuditRecord


class JsonlSink:
    """Appends one JSON object per record to ``path``; ``fsync=True`` syncs after each batch."""

    def __init__(
        self, path: str | os.PathLike[str], *, fsync: bool = False, name: str = ""
    ) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.name = name or f"jsonl:{self.path}"
        self._lock = threading.Lock()

    def emit(self, records: Sequence[AuditRecord]) -> None:
        text = "".join(
            json.dumps(r.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
            for r in records
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())


class LoggingSink:
    """One log line per record on ``logger`` (default ``aegis.audit.records``).

    The full record goes into ``extra={"audit": {...}}`` for structured handlers.
    """

    def __init__(
        self,
        logger: str | logging.Logger = "aegis.audit.records",
        *,
        level: int | str = "INFO",
        name: str = "",
    ) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = logging.getLevelName(level) if isinstance(level, str) else level
        if not isinstance(self.level, int):
            raise ValueError(f"unknown logging level {level!r}")
        self.name = name or f"logging:{self.logger.name}"

    def emit(self, records: Sequence[AuditRecord]) -> None:
        for r in records:
            self.logger.log(
                self.level,
                "audit #%d %s:%s risk=%s decision=%s result=%s rule=%s",
                r.id,
                r.action_type,
                r.target,
                r.risk_level,
                r.decision,
                r.result,
                r.matched_rule,
                extra={"audit": r.to_dict()},
            )


class WebhookSink:
    """POSTs ``{"records": [...]}`` as JSON to ``url``; any non-2xx answer is retried later.

    Uses the standard library (``urllib``) so that aegis-core needs no HTTP client dependency;
    it runs in the shipper thread, so blocking is harmless.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        name: str = "",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook sink needs an http(s) URL, got {url!r}")
        self.url = url
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.timeout = timeout
        self.name = name or f"webhook:{url}"

    def emit(self, records: Sequence[AuditRecord]) -> None:
        body = json.dumps({"records": [r.to_dict() for r in records]}).encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"webhook {self.url} answered {exc.code}") from None
        if not 200 <= status < 300:
            raise RuntimeError(f"webhook {self.url} answered {status}")


@hookimpl
def aegis_register_audit_sinks(register: Register) -> None:
    register("jsonl", JsonlSink, description="append records to a JSON Lines file (path=...)")
    register("logging", LoggingSink, description="log records with Python logging (logger=...)")
    register("webhook", WebhookSink, description="POST record batches as JSON (url=...)")
