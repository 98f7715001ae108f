"""Where the audit trail is: one rule shared by ``AuditStore``, ``Runtime`` and the CLI.

``audit_url(value)``:

* ``None`` -> ``$AEGIS_AUDIT_URL`` if set, else ``sqlite:///aegis_audit.db`` (working directory);
* a URL (anything with ``://``) -> itself, except that a bare ``postgresql://`` is given the
  psycopg 3 driver that ``agent-aegis-core[postgres]`` installs when psycopg2 is not there;
* ``:memory:`` -> an in-memory SQLite database;
* anything else, or a ``Path`` -> a SQLite file at that path (``~`` expanded); a string with
  a ``:`` but no ``://`` (``postgres:/h``) is a mistyped URL, an ``AuditError``.

So ``AuditStore("audit.db")``, ``Runtime(audit="audit.db")`` and ``aegis audit --db audit.db``
all mean the same file. No SQLAlchemy import here: the CLI resolves URLs before it needs one.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

from aegis.errors import AuditError
from aegis.runtime import DEFAULT_AUDIT_URL

ENV_VAR = "AEGIS_AUDIT_URL"
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")  # a Windows drive, as in C:\\aegis\\audit.db
POSTGRES_EXTRA = "agent-aegis-core[postgres]"


def audit_url(value: str | os.PathLike[str] | None = None) -> str:
    """The SQLAlchemy URL for a store setting (see the module docstring)."""
    if value is None:
        value = os.environ.get(ENV_VAR, "").strip() or DEFAULT_AUDIT_URL
    if isinstance(value, os.PathLike):
        return _sqlite_file(Path(value))
    if not isinstance(value, str):
        raise AuditError(
            f"an audit store is a URL or a file path, not {type(value).__name__}: {value!r}"
        )
    text = value.strip()
    if not text:
        raise AuditError("the audit store URL is empty (e.g. sqlite:///aegis_audit.db)")
    if text == ":memory:":
        return "sqlite://"
    if "://" not in text:
        if ":" in _DRIVE.sub("", text, count=1):  # "postgres:/h", "sqlite:x.db": a broken URL
            raise AuditError(
                f"not a database URL: {text.partition(':')[0]}:... (a URL needs '://', e.g. "
                f"{DEFAULT_AUDIT_URL}; a file path must not contain ':')"
            )
        return _sqlite_file(Path(text))
    return _with_postgres_driver(text)


def _sqlite_file(path: Path) -> str:
    return f"sqlite:///{path.expanduser()}"


def _with_postgres_driver(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if scheme.lower() not in ("postgresql", "postgres"):  # postgres:// as Heroku & co. write it
        return url
    if _importable("psycopg2"):
        return f"postgresql{sep}{rest}"
    if _importable("psycopg"):
        return f"postgresql+psycopg{sep}{rest}"
    raise AuditError(
        f"no PostgreSQL driver is installed for the audit store: pip install '{POSTGRES_EXTRA}'"
    )


def missing_driver_message(url: str, exc: BaseException) -> str:
    """One line for a URL whose database driver cannot be imported: what to install."""
    scheme = url.partition("://")[0].lower()
    if scheme.startswith("postgres"):
        return (
            f"its PostgreSQL driver is not installed ({exc}): "
            f"pip install '{POSTGRES_EXTRA}' (psycopg 3; use postgresql+psycopg://...)"
        )
    return f"its database driver is not installed ({exc})"


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)  # the engine would import it next anyway
    except ImportError:
        return False
    return True
