"""The ``--db`` option every command that reads the audit store takes, and opening that store.

The store URL comes from ``--db``, else ``AEGIS_AUDIT_URL``, else ``sqlite:///aegis_audit.db`` in
the current directory. A SQLite file that does not exist is reported (exit 3) rather than
silently created empty, so a typo in the path cannot look like "no actions were audited".
Kept apart from the command groups (audit, evidence, approvals, shadow, policy versions) so
each of them imports the option from here, not from another group.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import Parameter

from aegis.cli.errors import CliError, ExitCode
from aegis.runtime import DEFAULT_AUDIT_URL

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore

DbOption = Annotated[
    str | None,
    Parameter(help="Audit store URL or file path (default: $AEGIS_AUDIT_URL or ./aegis_audit.db)."),
]


def store_url(db: str | None) -> str:
    """``--db`` (a URL or a plain file path), else $AEGIS_AUDIT_URL, else the default file."""
    from aegis.errors import AuditError
    from aegis.runtime.audit.url import audit_url

    try:
        return audit_url(db)
    except AuditError as exc:
        source = "--db" if db is not None else "$AEGIS_AUDIT_URL"
        raise CliError(f"{source}: {exc}", ExitCode.USAGE) from None


def open_store(db: str | None) -> AuditStore:
    """A store to read from. Exit 3 when nothing is at that URL: reading never creates a file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from aegis.runtime.audit import AuditStore

    url = store_url(db)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CliError(f"--db {url!r}: not a database URL (e.g. {DEFAULT_AUDIT_URL})") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database))
        if not path.is_file():
            raise CliError(
                f"no audit database at {path} (run actions through Aegis first, e.g. "
                "`aegis demo --db sqlite:///aegis_audit.db`, or pass --db / set AEGIS_AUDIT_URL)",
                ExitCode.STORE_UNREACHABLE,
            )
    safe = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect().import_dbapi()  # fail here, clearly, if the driver is missing
    except ImportError as exc:
        from aegis.runtime.audit.url import missing_driver_message

        raise CliError(
            f"cannot open audit store {safe}: {missing_driver_message(url, exc)}",
            ExitCode.STORE_UNREACHABLE,
        ) from None
    except Exception as exc:
        raise CliError(
            f"cannot open audit store {safe}: {type(exc).__name__}: {exc}",
            ExitCode.STORE_UNREACHABLE,
        ) from None
    return AuditStore(url)
