"""The error boundary: every failure is one line on stderr with the documented exit code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cli_helpers import RunCli

from aegis import hookimpl
from aegis.errors import AuditError


class Raising:
    """A plugin whose `aegis boom KIND` command raises what the test asks for."""

    @hookimpl
    def aegis_register_commands(self, app: Any) -> None:
        @app.command(name="boom")  # type: ignore[untyped-decorator]
        def boom(kind: str) -> int:
            errors: dict[str, BaseException] = {
                "bug": ZeroDivisionError("division by zero\nsecond line"),
                "interrupt": KeyboardInterrupt(),
                "audit": AuditError("disk I/O error"),
                "pipe": BrokenPipeError(),
            }
            raise errors[kind]


@pytest.fixture
def boom(aegis_plugin: Callable[..., str]) -> None:
    aegis_plugin(Raising(), name="raising")


def test_unexpected_exception_is_exit_4_one_line(run_cli: RunCli, boom: None) -> None:
    result = run_cli("boom", "bug")
    assert result.code == 4
    assert result.err == (
        "aegis: internal error: ZeroDivisionError: division by zero second line "
        "(set AEGIS_DEBUG=1 for the traceback)\n"
    )


def test_debug_env_shows_traceback(
    run_cli: RunCli, boom: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_DEBUG", "1")
    result = run_cli("boom", "bug")
    assert result.code == 4
    assert "Traceback" in result.err


def test_interrupt_is_130(run_cli: RunCli, boom: None) -> None:
    result = run_cli("boom", "interrupt")
    assert result.code == 130
    assert result.err == "aegis: interrupted\n"


def test_audit_error_is_store_unreachable(run_cli: RunCli, boom: None) -> None:
    result = run_cli("boom", "audit")
    assert result.code == 3
    assert result.err == "aegis: error: audit store: disk I/O error\n"


def test_missing_argument_is_usage_error(run_cli: RunCli, boom: None) -> None:
    result = run_cli("boom")
    assert result.code == 2
    assert result.err.startswith("aegis: error:")
    assert len(result.err.strip().splitlines()) == 1


def test_version_flag(run_cli: RunCli) -> None:
    from aegis import __version__

    result = run_cli("--version")
    assert result.code == 0
    assert result.out.strip() == __version__
