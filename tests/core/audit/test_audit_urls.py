"""Where the trail goes: plain paths, $AEGIS_AUDIT_URL, missing drivers, one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from audit_helpers import run_action

from aegis import Action, Policy, Result, ResultStatus, Runtime
from aegis.adapters.base import BaseExecutor
from aegis.errors import AuditError
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.url import audit_url


class Noop(BaseExecutor):
    async def execute(self, action: Action) -> Result:
        return Result(action, ResultStatus.SUCCESS)


POLICY = {"version": "1", "rules": [{"name": "r", "match": {"type": "*"}, "approval": "auto"}]}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("audit.db", "sqlite:///audit.db"),
        ("/var/aegis/audit.db", "sqlite:////var/aegis/audit.db"),
        (Path("rel/a.db"), "sqlite:///rel/a.db"),
        (":memory:", "sqlite://"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("mysql+pymysql://u@h/db", "mysql+pymysql://u@h/db"),
    ],
)
def test_audit_url_turns_paths_into_sqlite_urls(given: str | Path, expected: str) -> None:
    assert audit_url(given) == expected


def test_home_is_expanded() -> None:
    assert audit_url("~/a.db") == f"sqlite:///{Path.home() / 'a.db'}"


async def test_store_accepts_a_plain_path(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    async with AuditStore(str(path)) as store:
        await run_action(store)
    assert path.is_file()
    assert AuditStore(f"sqlite:///{path}").count() == 1


async def test_runtime_honours_aegis_audit_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "from-env.db"
    monkeypatch.setenv("AEGIS_AUDIT_URL", f"sqlite:///{target}")
    async with Runtime(
        executor=Noop(), policy=Policy.from_dict(POLICY), approval_handler=AutoApprovalHandler()
    ) as runtime:
        await runtime.run_one(Action("read", "crm"))
    assert AuditStore(str(target)).count() == 1
    assert not (tmp_path / "aegis_audit.db").exists()


async def test_runtime_accepts_a_path(tmp_path: Path) -> None:
    path = tmp_path / "rt.db"
    async with Runtime(
        executor=Noop(),
        policy=Policy.from_dict(POLICY),
        approval_handler=AutoApprovalHandler(),
        audit=str(path),
    ) as runtime:
        await runtime.run_one(Action("read", "crm"))
    assert AuditStore(path).count() == 1


def test_postgres_without_a_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(AuditError, match=r"pip install 'agent-aegis-core\[postgres\]'"):
        AuditStore("postgresql://aegis@127.0.0.1/audit")


def test_explicit_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    store = AuditStore("postgresql+psycopg2://aegis@127.0.0.1/audit")
    with pytest.raises(AuditError, match=r"agent-aegis-core\[postgres\]") as caught:
        store.open_sync()
    assert "\n" not in str(caught.value)


def test_bare_postgresql_url_uses_psycopg3_when_that_is_what_is_installed() -> None:
    pytest.importorskip("psycopg")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        assert audit_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
        assert audit_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    else:  # pragma: no cover - psycopg2 is not a test dependency
        assert audit_url("postgresql://u@h/db") == "postgresql://u@h/db"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////nonexistent-dir-for-aegis/deeper/audit.db",
        "postgresql+psycopg://nobody:secret@127.0.0.1:1/none?connect_timeout=2",
    ],
)
def test_store_errors_are_one_line_without_the_sqlalchemy_link(url: str) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(AuditError) as caught:
        AuditStore(url).open_sync()
    message = str(caught.value)
    assert "\n" not in message
    assert "sqlalche.me" not in message
    assert "Background on this error" not in message
    assert "secret" not in message


@pytest.mark.parametrize("typo", ["postgres:/host/db", "sqlite:audit.db", "::nonsense::"])
def test_a_mistyped_url_is_not_taken_for_a_file_name(typo: str) -> None:
    with pytest.raises(AuditError, match="not a database URL"):
        audit_url(typo)


def test_cli_db_accepts_a_plain_path(tmp_path: Path) -> None:
    import asyncio

    from aegis.cli import main as cli_main

    path = tmp_path / "trail.db"

    async def fill() -> None:
        async with AuditStore(str(path)) as store:
            await run_action(store)

    asyncio.run(fill())
    assert cli_main(["audit", "verify", "--db", str(path)]) == 0
