"""Tool pinning, the rug-pull defence: a tool is trusted as it was first seen, not as it is now.

The first listing of a server pins every tool (name, description and input schema digested
together, with the rest of its definition a client is shown: title, annotations, output
schema, icons, ``_meta``) in the audit database. After that a tool whose digest changed, a tool
that appears under a new name with a known tool's schema (a rename), or any tool the server did
not have before (typically announced with ``notifications/tools/list_changed``) is
*quarantined* until a human accepts it (``aegis mcp pins accept SERVER TOOL``). Going back to the
pinned digest lifts the quarantine by itself. The proxy hides quarantined tools or makes them
approve-only.

The table lives next to the audit trail (same SQLAlchemy URL), so every proxy process and the
CLI see the same pins; every change is also written to the audit trail (``events``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from sqlalchemy import Column, MetaData, String, Table, Text, select

from aegis.errors import AuditError
from aegis.runtime.audit.opening import tables_engine
from aegis.runtime.audit.writer import SideWrite, Statements

TRUSTED = "trusted"
QUARANTINED = "quarantined"

metadata = MetaData()
pins_table = Table(
    "aegis_mcp_pins",
    metadata,
    Column("server", String(255), primary_key=True),
    Column("tool", String(255), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("digest", String(64)),  # what a human trusted; NULL for a tool never accepted
    Column("seen_digest", String(64), nullable=False),  # what the server shows now
    Column("schema_digest", String(64), nullable=False),  # of the input schema shown now
    Column("pinned_schema_digest", String(64)),
    Column("reason", Text),
    Column("description", Text),  # the pinned description
    Column("seen_description", Text),
    Column("updated_at", String(32), nullable=False),
)


@attrs.frozen
class ToolShape:
    """What is pinned of a tool: exactly what the model reads and what it may send, and
    ``extra``, the rest of the definition the client is shown (title, annotations such as
    ``readOnlyHint``, output schema, icons, ``_meta``): a client may act on those too."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def digest(self) -> str:
        extra = dict(self.extra)
        return _digest(
            {"name": self.name, "description": self.description, "schema": self._s, "extra": extra}
        )

    @property
    def legacy_digest(self) -> str:
        """The digest of pins made before ``extra`` was pinned (never equal to a ``digest``):
        such a pin takes the rest of the definition once, as it is then (``reconcile``)."""
        return _digest({"name": self.name, "description": self.description, "schema": self._s})

    @property
    def schema_digest(self) -> str:
        return _digest(self._s)

    @property
    def _s(self) -> Any:
        return dict(self.input_schema)


@attrs.frozen
class Pin:
    server: str
    tool: str
    status: str
    digest: str | None
    seen_digest: str
    schema_digest: str
    pinned_schema_digest: str | None
    reason: str | None
    description: str | None
    seen_description: str | None
    updated_at: str


@attrs.frozen
class PinEvent:
    """A change worth an audit record: ``kind`` is pinned, quarantined, restored or accepted."""

    kind: str
    server: str
    tool: str
    reason: str
    old_digest: str | None
    new_digest: str | None


class PinStore:
    """Pins in the database at ``url`` (the audit store's URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._engine = tables_engine(url, metadata)
        except Exception as exc:  # fail closed: without pins, nothing can be trusted
            raise AuditError(f"cannot open the MCP pin table at {url}: {exc}") from exc

    def close(self) -> None:
        self._engine.dispose()

    def pins(self, server: str | None = None) -> list[Pin]:
        query = select(pins_table).order_by(pins_table.c.server, pins_table.c.tool)
        if server is not None:
            query = query.where(pins_table.c.server == server)
        with self._engine.connect() as conn:
            return [Pin(**row._mapping) for row in conn.execute(query)]

    def get(self, server: str, tool: str) -> Pin | None:
        found = [p for p in self.pins(server) if p.tool == tool]
        return found[0] if found else None

    def reconcile(
        self, server: str, tools: Iterable[ToolShape], *, apply: bool = True
    ) -> tuple[dict[str, str], list[PinEvent]]:
        """Compare a listing with the pins; returns each tool's status and what changed.

        ``apply=False`` says what would change and changes nothing (the transaction is rolled
        back): the proxy records those events first, then applies them, so no pin ever
        changes without its audit record."""
        listing = list(tools)
        events: list[PinEvent] = []
        status: dict[str, str] = {}
        now = _now()
        with self._engine.connect() as conn, conn.begin() as transaction:
            rows = {
                r.tool: r
                for r in conn.execute(select(pins_table).where(pins_table.c.server == server))
            }
            first_listing = not rows
            listed = {t.name for t in listing}
            gone_schemas = {
                r.schema_digest: r.tool for r in rows.values() if r.tool not in listed and r.digest
            }
            for tool in listing:
                digest, row = tool.digest, rows.get(tool.name)
                values = {
                    "seen_digest": digest,
                    "schema_digest": tool.schema_digest,
                    "seen_description": tool.description,
                    "updated_at": now,
                }
                if row is None:
                    if first_listing:
                        state, reason, kind = TRUSTED, "first seen", "pinned"
                    elif tool.schema_digest in gone_schemas:
                        old = gone_schemas[tool.schema_digest]
                        state, reason, kind = QUARANTINED, f"renamed from {old!r}", "quarantined"
                    else:
                        state, reason, kind = QUARANTINED, "new tool", "quarantined"
                    conn.execute(
                        pins_table.insert().values(
                            server=server,
                            tool=tool.name,
                            status=state,
                            digest=digest if state == TRUSTED else None,
                            pinned_schema_digest=tool.schema_digest if state == TRUSTED else None,
                            description=tool.description if state == TRUSTED else None,
                            reason=reason,
                            **values,
                        )
                    )
                    events.append(PinEvent(kind, server, tool.name, reason, None, digest))
                elif row.digest == digest:
                    state = TRUSTED
                    if row.status != TRUSTED:
                        conn.execute(
                            _update(server, tool.name, status=TRUSTED, reason=None, **values)
                        )
                        events.append(
                            PinEvent(
                                "restored",
                                server,
                                tool.name,
                                "back to the pinned version",
                                row.seen_digest,
                                digest,
                            )
                        )
                elif row.digest is not None and row.digest == tool.legacy_digest:
                    # Pinned before its title, annotations... were: they are pinned as they
                    # are now, once (first sight, as the pin itself was); a change after that,
                    # or annotations added to a tool pinned without, is quarantined.
                    state = TRUSTED
                    reason = "pinned with the rest of its definition (title, annotations, ...)"
                    conn.execute(
                        _update(
                            server,
                            tool.name,
                            status=TRUSTED,
                            reason=None,
                            digest=digest,
                            pinned_schema_digest=tool.schema_digest,
                            **values,
                        )
                    )
                    events.append(
                        PinEvent("repinned", server, tool.name, reason, row.digest, digest)
                    )
                elif row.seen_digest == digest and row.status == QUARANTINED:
                    state = QUARANTINED  # already quarantined for this very version
                else:
                    state = QUARANTINED
                    reason = _what_changed(row, tool)
                    conn.execute(_update(server, tool.name, status=state, reason=reason, **values))
                    events.append(
                        PinEvent("quarantined", server, tool.name, reason, row.digest, digest)
                    )
                status[tool.name] = state
            if not apply:
                transaction.rollback()
        return status, events


_ACCEPT = (
    "UPDATE aegis_mcp_pins SET status = ?, digest = seen_digest, "
    "pinned_schema_digest = schema_digest, description = seen_description, reason = NULL, "
    "updated_at = ? WHERE server = ? AND tool = ?"
)


def accept_write(server: str, tool: str) -> SideWrite:
    """Trust the version the server shows now (a human's decision, ``aegis mcp pins
    accept``), as the side write of its audit record (``AuditStore.begin``): the tool is
    trusted in the transaction that records who trusted it, or not at all."""

    def write(cur: Any, st: Statements, audit_id: int) -> None:
        cur.execute(st.convert(_ACCEPT), (TRUSTED, _now(), server, tool))
        if cur.rowcount != 1:
            raise KeyError(f"no pinned tool {tool!r} on server {server!r}")

    return write


def _update(server: str, tool: str, **values: Any) -> Any:
    return (
        pins_table.update()
        .where((pins_table.c.server == server) & (pins_table.c.tool == tool))
        .values(**values)
    )


def _what_changed(row: Any, tool: ToolShape) -> str:
    if row.digest is None:
        return "new tool, changed again before it was accepted"
    changes = []
    if (row.description or "") != tool.description:
        changes.append("description")
    if row.pinned_schema_digest != tool.schema_digest:
        changes.append("input schema")
    return f"{' and '.join(changes) or 'definition'} changed since it was pinned"


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
