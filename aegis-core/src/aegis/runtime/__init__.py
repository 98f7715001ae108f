"""The pipeline engine, approval handlers, audit store, sinks and the policy watcher."""

#: Where the audit trail goes when nobody says: a SQLite file in the working directory. Kept
#: here (not in audit.py) so the CLI can name it without importing SQLAlchemy.
DEFAULT_AUDIT_URL = "sqlite:///aegis_audit.db"
