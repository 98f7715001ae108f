"""Suite-wide fixtures and rules.

``postgres_url``: a real, throw-away PostgreSQL server for one session.

Tests that use it are marked ``@pytest.mark.postgres`` (excluded by default; ``pytest -m
postgres`` runs them). The server is Debian's PostgreSQL (``/usr/lib/postgresql/*/bin``, or
``AEGIS_PG_BIN``), initialised in a temp dir owned by the ``postgres`` user when run as root
(initdb refuses root), listening on 127.0.0.1 on a free port. If it cannot start the tests are
skipped — except under ``CI=true``, where that is a failure: CI must not pass by not testing.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Fixtures and stand-ins every test under tests/ shares, the plugins' own sessions included
#: (they need only the core): see tests/plugin_helpers.py.
pytest_plugins = ("plugin_helpers",)


def _pg_bin() -> Path | None:
    env = os.environ.get("AEGIS_PG_BIN")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists():
            return Path(c)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str]) -> None:
    done = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed: {done.stderr.strip() or done.stdout}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/aegis_test`` on a fresh server."""
    root = Path(tempfile.mkdtemp(prefix="aegis-pg-"))
    data, port = root / "data", _free_port()
    started = False
    pg = _pg_bin()
    try:
        if pg is None:
            raise RuntimeError("no PostgreSQL binaries (apt-get install -y postgresql)")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        _run([str(pg / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"])
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=on"
        _run([str(pg / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w",
              "start"])  # fmt: skip
        started = True
        from sqlalchemy import create_engine, text

        admin = create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE aegis_test"))
        admin.dispose()
    except Exception as exc:
        if started and pg is not None:
            _run([str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(root, ignore_errors=True)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL could not start (CI=true, so this fails): {exc}")
        pytest.skip(f"PostgreSQL could not start: {exc}")
    assert pg is not None
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/aegis_test"
    finally:
        _run([str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh database per test on the session's server (tests never see each other's rows)."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


# --- tests that need tests/plugins/aegis-example-plugin installed ---------------------------
# `nox -s plugin_wheel` installs it (from wheels, then editable) and sets
# AEGIS_REQUIRE_EXAMPLE_PLUGIN=1, which turns a missing plugin into an error, so that session
# cannot pass by skipping. Elsewhere (the default suite, a dev venv) these tests are skipped.
_NEEDS_EXAMPLE_PLUGIN = (Path(__file__).parent / "plugins", Path(__file__).parent / "packaging")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if importlib.util.find_spec("aegis_example_plugin") is not None:
        return
    if os.environ.get("AEGIS_REQUIRE_EXAMPLE_PLUGIN") == "1":
        raise pytest.UsageError(
            "AEGIS_REQUIRE_EXAMPLE_PLUGIN=1 but aegis-example-plugin is not installed"
        )
    skip = pytest.mark.skip(reason="needs aegis-example-plugin installed: nox -s plugin_wheel")
    for item in items:
        if any(folder in item.path.parents for folder in _NEEDS_EXAMPLE_PLUGIN):
            item.add_marker(skip)
