from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cli_helpers import RunCli

from aegis import hookimpl

PluginFixture = Callable[..., str]


class HelloPlugin:
    """Adds `aegis hello` and a policy template, like aegis-server adds `serve`."""

    @hookimpl
    def aegis_register_commands(self, app: Any) -> None:
        @app.command(name="hello")
        def hello(name: str = "world") -> int:
            """Say hello (test plugin)."""
            print(f"hello {name}")
            return 0

    @hookimpl
    def aegis_register_policy_templates(self, register: Any) -> None:
        register("hello-template", "/nonexistent/hello.yaml", description="test")


class BrokenCommandsPlugin:
    @hookimpl
    def aegis_register_commands(self, app: Any) -> None:
        raise RuntimeError("boom")


class BrokenRegistrationPlugin:
    @hookimpl
    def aegis_register_executors(self, register: Any) -> None:
        raise ValueError("cannot build executor")


def test_plugins_lists_builtins(run_cli: RunCli) -> None:
    result = run_cli("plugins")
    assert result.code == 0, result.err
    assert "aegis.builtins.templates" in result.out
    assert (
        "policy_templates: browser, coding-agent, crm, data-pipeline, default, devops, "
        "ecommerce, finance, healthcare, support" in result.out
    )
    assert "agent-aegis-core" in result.out


def test_plugins_json_includes_registrations_and_failures(
    run_cli: RunCli, aegis_plugin: PluginFixture
) -> None:
    aegis_plugin(HelloPlugin(), name="hello-plugin")
    aegis_plugin(BrokenRegistrationPlugin(), name="broken-plugin")
    result = run_cli("plugins", "--format", "json")
    assert result.code == 1, result.err  # a plugin failed
    payload = json.loads(result.out)
    by_name = {p["name"]: p for p in payload["plugins"]}
    assert by_name["hello-plugin"]["registers"] == {"policy_templates": ["hello-template"]}
    assert by_name["aegis.builtins.templates"]["builtin"] is True
    failures = {f["plugin"]: f["error"] for f in payload["failures"]}
    assert "cannot build executor" in failures["broken-plugin"]


def test_plugins_table_shows_failures(run_cli: RunCli, aegis_plugin: PluginFixture) -> None:
    aegis_plugin(BrokenRegistrationPlugin(), name="broken-plugin")
    result = run_cli("plugins")
    assert result.code == 1
    assert "Failed to load" in result.out
    assert "broken-plugin" in result.out and "cannot build executor" in result.out


def test_plugin_adds_a_command(run_cli: RunCli, aegis_plugin: PluginFixture) -> None:
    assert run_cli("hello").code == 2  # not there without the plugin
    aegis_plugin(HelloPlugin(), name="hello-plugin")
    result = run_cli("hello", "--name", "aegis")
    assert result.code == 0, result.err
    assert result.out == "hello aegis\n"
    assert "hello" in run_cli("--help").out


def test_broken_command_plugin_is_reported_not_fatal(
    run_cli: RunCli, aegis_plugin: PluginFixture
) -> None:
    aegis_plugin(BrokenCommandsPlugin(), name="broken-commands")
    result = run_cli("--help")
    assert result.code == 0
    assert "plugin 'broken-commands' could not add its commands: RuntimeError: boom" in result.err
    assert "validate" in result.out


def test_unknown_command_and_option_are_usage_errors(run_cli: RunCli) -> None:
    result = run_cli("frobnicate")
    assert result.code == 2
    assert result.err.startswith("aegis: error:") and len(result.err.strip().splitlines()) == 1
    result = run_cli("plugins", "--format", "xml")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1


def test_help_documents_exit_codes(run_cli: RunCli) -> None:
    result = run_cli("--help")
    assert result.code == 0
    for text in ("Exit codes", "check failed", "usage error", "store unreachable"):
        assert text in result.out
