"""The pipeline engine, approval handlers, audit store, sinks and the policy watcher."""

#: Where the audit trail goes when nobody says: a SQLite file in the working directory. Kept
#: here (not in audit.py) so the CLI can name it without importing SQLAlchemy.
DEFAULT_AUDIT_URL = "sqlite:///aegis_audit.db"


def __getattr__(name: str) -> object:
    # ``from aegis.runtime import AuditLogger`` as in agent-aegis 0.1.x, without importing
    # SQLAlchemy for everyone who only needs DEFAULT_AUDIT_URL.
    if name == "AuditLogger":
        from aegis.runtime.audit.logger import AuditLogger

        return AuditLogger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
