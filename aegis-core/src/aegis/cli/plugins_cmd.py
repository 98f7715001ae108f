"""``aegis plugins``: what is installed, what each plugin registers, and what failed to load.

A plugin that failed is the first thing to look for when a policy says a condition is unknown,
so failures are listed after the plugins, and also in ``--format json``; the exit code is 1
when any plugin failed (so a deployment check can stop on it), else 0.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

from cyclopts import Parameter


def plugins(
    *,
    format: Annotated[Literal["table", "json"], Parameter(alias="-f")] = "table",
) -> int:
    """List every plugin, its distribution and version, what it registers, and load failures.

    Exits 1 when a plugin failed to load or register.

    Parameters
    ----------
    format
        table (for humans) or json (for scripts).
    """
    from aegis import plugins as plugin_registry
    from aegis.cli.errors import ExitCode

    infos = plugin_registry.plugin_infos()
    failures = plugin_registry.load_failures()
    if format == "json":
        payload: dict[str, Any] = {
            "plugins": [
                {
                    "name": i.name,
                    "distribution": i.distribution,
                    "version": i.version,
                    "builtin": i.builtin,
                    "registers": {kind: list(names) for kind, names in i.registers.items()},
                }
                for i in infos
            ],
            "failures": [
                {"plugin": f.plugin, "distribution": f.distribution, "error": f.error}
                for f in failures
            ],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return ExitCode.CHECK_FAILED if failures else ExitCode.OK

    from aegis.cli.output import print_message, print_table

    rows = [
        (
            i.name,
            i.distribution or "-",
            i.version or "-",
            "; ".join(f"{kind}: {', '.join(names)}" for kind, names in i.registers.items())
            or "(hooks only)",
        )
        for i in infos
    ]
    print_table(("Plugin", "Distribution", "Version", "Registers"), rows, title="Plugins")
    if failures:
        print_message("")
        print_table(
            ("Plugin", "Distribution", "Error"),
            [(f.plugin, f.distribution or "-", f.error) for f in failures],
            title="Failed to load",
        )
        return ExitCode.CHECK_FAILED
    return ExitCode.OK
