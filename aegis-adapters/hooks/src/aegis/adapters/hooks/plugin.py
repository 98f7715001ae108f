"""The entry point (``[project.entry-points.aegis] hooks = "aegis.adapters.hooks.plugin"``)."""

from __future__ import annotations

from typing import Any

from aegis import hookimpl


@hookimpl
def aegis_register_commands(app: Any) -> None:
    from aegis.adapters.hooks import cli

    cli.register(app)
