"""The entry point (``[project.entry-points.aegis] mcp = "aegis.adapters.mcp.plugin"``)."""

from __future__ import annotations

from typing import Any

from aegis import hookimpl


@hookimpl
def aegis_register_commands(app: Any) -> None:
    from aegis.adapters.mcp import cli

    cli.register(app)
