"""The root ``aegis`` app: built-in commands, plugin commands, and the error boundary.

Start-up is kept cheap: command modules import only the standard library and cyclopts at
module level; policy, audit and runtime code is imported inside the command that needs it, and
plugins are loaded only when the command line may name a plugin's command (or asks for help).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from cyclopts import App, Parameter

from aegis.cli.errors import EXIT_CODES_HELP, CliError, ExitCode

BUILTIN_COMMANDS = frozenset(
    {
        "init",
        "validate",
        "schema",
        "simulate",
        "test",
        "diff",
        "audit",
        "approvals",
        "stats",
        "plugins",
        "demo",
        "keys",
        "policy",
        "shadow",
    }
)


def build_app(*, with_plugins: bool = True) -> App:
    """A fresh root app (fresh each call, so plugin commands never leak between runs/tests)."""
    from aegis import __version__
    from aegis.cli import (
        approvals_cmds,
        audit_cmds,
        demo,
        evidence_cmds,
        plugins_cmd,
        policy_cmds,
        policy_diff,
        policy_test,
        policy_versions_cmds,
        shadow_cmds,
    )

    app = App(
        name="aegis",
        help="Aegis: policy checks, approval gates and an audit trail for AI agent actions.",
        help_epilogue=EXIT_CODES_HELP,
        version=__version__,
        version_flags=["--version", "-V"],
        # List options get no generated "--empty-NAME" twin: it only cluttered every --help.
        # (Bool flags keep cyclopts' "--no-NAME" unless a command turns it off.)
        default_parameter=Parameter(negative_iterable=()),
        suppress_keyboard_interrupt=False,  # run() reports it, in the same one-line style
    )
    app.command(policy_cmds.init, name="init")
    app.command(policy_cmds.validate, name="validate")
    app.command(policy_cmds.schema, name="schema")
    app.command(policy_cmds.simulate, name="simulate")
    app.command(policy_test.run_tests, name="test")
    app.command(policy_diff.diff, name="diff")

    audit_app = App(name="audit", help=audit_cmds.AUDIT_HELP)
    audit_app.default(audit_cmds.audit)
    audit_app.command(audit_cmds.verify, name="verify")
    app.command(audit_app)
    evidence_cmds.register(app, audit_app)
    app.command(audit_cmds.stats, name="stats")
    app.command(approvals_cmds.build())
    app.command(policy_versions_cmds.build())
    app.command(shadow_cmds.build())

    app.command(plugins_cmd.plugins, name="plugins")
    app.command(demo.demo, name="demo")
    if with_plugins:
        add_plugin_commands(app)
    return app


def add_plugin_commands(app: App) -> None:
    """Let every plugin add its commands (``aegis_register_commands``); a failing plugin is
    reported in one line and the rest of the CLI keeps working."""
    from aegis import plugins

    for impl in plugins.iter_hook_impls("aegis_register_commands"):
        try:
            impl.function(app=app)
        except Exception as exc:
            _stderr(
                f"aegis: warning: plugin {impl.plugin_name!r} could not add its commands: "
                f"{type(exc).__name__}: {exc}"
            )


def _wants_plugin_commands(tokens: Sequence[str]) -> bool:
    """Plugins are loaded unless the first word is a built-in command (fast path)."""
    first = next((t for t in tokens if not t.startswith("-")), None)
    return first is None or first not in BUILTIN_COMMANDS


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code; every failure becomes one line on stderr."""
    from cyclopts.exceptions import CycloptsError

    from aegis.errors import AuditError, PolicyError

    tokens = list(sys.argv[1:] if argv is None else argv)
    try:
        app = build_app(with_plugins=_wants_plugin_commands(tokens))
        if not tokens and app.default_command is None:
            return _no_command(app)
        result: Any = app(
            tokens, exit_on_error=False, print_error=False, result_action="return_value"
        )
    except CycloptsError as exc:
        _stderr(f"aegis: error: {_one_line(str(exc))}")
        return ExitCode.USAGE
    except CliError as exc:
        _stderr(f"aegis: error: {exc.message}")
        return exc.code
    except PolicyError as exc:
        for issue in exc.issues:
            _stderr(str(issue))
        return ExitCode.CHECK_FAILED
    except AuditError as exc:
        _stderr(f"aegis: error: audit store: {_one_line(str(exc))}")
        return ExitCode.STORE_UNREACHABLE
    except KeyboardInterrupt:
        _stderr("aegis: interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped reading: not our failure. Silence the flush at exit.
        _silence_stdout()
        return ExitCode.OK
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    except Exception as exc:
        if os.environ.get("AEGIS_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        _stderr(
            f"aegis: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(set AEGIS_DEBUG=1 for the traceback)"
        )
        return ExitCode.INTERNAL
    if isinstance(result, bool) or result is None:
        return ExitCode.OK
    return int(result) if isinstance(result, int) else ExitCode.OK


def _no_command(app: App) -> int:
    """Bare ``aegis``: the help a newcomer needs on stdout, and exit 2 like any usage error, so
    a script that lost its arguments does not pass."""
    app.help_print([])
    _stderr("aegis: error: no command given; choose one of the commands above")
    return ExitCode.USAGE


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _stderr(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
