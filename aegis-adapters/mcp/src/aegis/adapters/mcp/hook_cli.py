"""``aegis hook claude-code`` / ``aegis hook cursor`` (see ``hooks``)."""

from __future__ import annotations

from cyclopts import App


def register(app: App) -> None:
    pass
