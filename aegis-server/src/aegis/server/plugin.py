"""The ``aegis`` entry point of agent-aegis-server: adds ``aegis serve`` to the CLI."""

from __future__ import annotations

from typing import Any

from aegis.hookspecs import hookimpl


@hookimpl
def aegis_register_commands(app: Any) -> None:
    from aegis.server.cli import serve

    app.command(serve, name="serve")
