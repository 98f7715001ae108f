"""The hash-chained audit trail: one store on any SQLAlchemy database, and what reads it.

Where to start: ``store.AuditStore`` is the store a runtime writes to; ``writer`` is its
group-commit thread; ``reader`` and ``query`` read; ``chain``, ``chain_walk`` and ``verify``
check the chain; ``checkpoint``, ``merkle``, ``proof`` and ``evidence`` are the signed evidence.

The store's public names are importable from here, as they were when this was one module
(``from aegis.runtime.audit import AuditStore``). They load on first use, so importing a
cheap submodule (``url``, ``schema``) does not pull in the whole store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis.runtime.audit.autocheckpoint import CheckpointSchedule
    from aegis.runtime.audit.chain import VerifyReport
    from aegis.runtime.audit.logger import AuditLogger
    from aegis.runtime.audit.query import AuditFilter, Order, RuleStats, Since
    from aegis.runtime.audit.reader import AuditReader, Durability
    from aegis.runtime.audit.record import AuditRecord
    from aegis.runtime.audit.ship import AuditSink, SinkSpec
    from aegis.runtime.audit.store import AuditStore
    from aegis.runtime.audit.url import audit_url

__all__ = [
    "AuditFilter",
    "AuditLogger",
    "AuditReader",
    "AuditRecord",
    "AuditSink",
    "AuditStore",
    "CheckpointSchedule",
    "Durability",
    "Order",
    "RuleStats",
    "Since",
    "SinkSpec",
    "VerifyReport",
    "audit_url",
]

_WHERE = {
    "AuditFilter": "query",
    "AuditLogger": "logger",
    "AuditReader": "reader",
    "AuditRecord": "record",
    "AuditSink": "ship",
    "AuditStore": "store",
    "CheckpointSchedule": "autocheckpoint",
    "Durability": "reader",
    "Order": "query",
    "RuleStats": "query",
    "Since": "query",
    "SinkSpec": "ship",
    "VerifyReport": "chain",
    "audit_url": "url",
}


def __getattr__(name: str) -> object:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{where}"), name)
